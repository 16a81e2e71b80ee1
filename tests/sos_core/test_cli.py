"""The `sos` command's contract: exit statuses and one-sentence errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sos_core.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sos_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_inspect() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    assert "inspect" in proc.stdout


def test_inspect_missing_file_exits_2_with_one_sentence(tmp_path: Path) -> None:
    proc = _run("inspect", str(tmp_path / "nowhere.dcm"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "nowhere.dcm does not exist" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_inspect_text_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "notes.dcm"
    bad.write_text("not an image at all\n" * 20)
    proc = _run("inspect", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("sos: ")


def test_inspect_png_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) * 13 % 65535).astype(np.uint16)
    path = tmp_path / "ceph.png"
    Image.fromarray(img).save(path)
    assert main(["inspect", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ok"] is True
    assert info["kind"] == "image"
    assert info["shape"] == [64, 80]
    assert info["spacing_mm"] is None


def test_inspect_mixed_inputs_exit_2_but_report_the_good_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    assert main(["inspect", "--json", str(good), str(tmp_path / "missing.png")]) == 2
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["ok"] for r in rows] == [True, False]
    assert rows[1]["error"] == "StudyNotFound"


def test_internal_fault_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sos_core.imaging

    def boom(*_a: object, **_k: object) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(sos_core.imaging, "open_study", boom)
    assert main(["inspect", str(tmp_path)]) == 1
