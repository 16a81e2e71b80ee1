"""Start-up helpers of `sos-review`: arguments, the sample folder, one-time configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from sos_desktop import app


def test_arguments() -> None:
    args = app.parse_args(["study.dcm", "--quit-after", "0.5"])
    assert args.path == Path("study.dcm")
    assert args.quit_after == 0.5
    assert app.parse_args([]).path is None


def test_startup_path_prefers_the_argument_then_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "x.png"
    assert app.startup_path(given) == given
    empty = tmp_path / "samples"
    empty.mkdir()
    (empty / ".gitkeep").write_text("", encoding="utf-8")
    monkeypatch.setattr(app, "sample_folder", lambda: empty)
    assert app.startup_path(None) is None  # empty sample: start with "Open a study"
    (empty / "ceph.png").write_bytes(b"x")
    assert app.startup_path(None) == empty
