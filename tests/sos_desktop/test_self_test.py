"""`sos-review --self-test`: one line and exit 0 on a working installation, one sentence else."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from sos_desktop import app
from sos_desktop.self_test import run
from tests.sos_core.retrain.conftest import random_model_dir

LINE = re.compile(
    r"^SOS Review self-test OK: cbct/series_000 → stage [0-3] \(.+\), model \S+, \d+ ms$"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_model_dir(tmp_path_factory.mktemp("self_test") / "student", seed=5)


def test_flag_prints_one_line_and_exits_0(
    model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOS_MODEL_DIR", str(model))
    assert app.main(["--self-test"]) == 0
    out, err = capsys.readouterr()
    assert LINE.match(out.rstrip("\n")), out
    assert out.count("\n") == 1
    assert "FAILED" not in err


def test_without_a_model_it_exits_1_with_one_sentence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the desktop tests' autouse fixture points SOS_MODEL_DIR at a folder that does not exist
    assert app.main(["--self-test"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert re.match(r"^SOS Review self-test FAILED: No model is installed in .*\.\n$", err), err


def test_without_a_console_the_line_goes_to_the_log_folder(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A windowed Windows build has sys.stdout None; the result must not be lost."""
    monkeypatch.setenv("SOS_MODEL_DIR", str(model))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(sys, "stdout", None)
    assert run() == 0
    (written,) = (tmp_path / "state").rglob("self-test.txt")
    assert LINE.match(written.read_text(encoding="utf-8").rstrip("\n"))
