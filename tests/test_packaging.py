"""The distribution installs both packages, the console scripts, and the resources folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("sos_review-*.whl")
    return found


def test_wheel_holds_packages_and_resources(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "sos_core/__init__.py" in names
    assert "sos_desktop/__init__.py" in names
    assert "resources/__init__.py" in names
    on_disk = {
        str(p.relative_to(ROOT)).replace("\\", "/")
        for p in (ROOT / "resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert on_disk <= set(names), f"resources missing from the wheel: {on_disk - set(names)}"


def test_wheel_declares_console_scripts(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        (ep,) = [n for n in zf.namelist() if n.endswith("entry_points.txt")]
        text = zf.read(ep).decode()
    assert "sos = sos_core.cli:console_main" in text
    assert "sos-review = sos_desktop.launch:main" in text


def test_core_imports_without_qt() -> None:
    """STYLE A1: sos_core works where PySide6 and pyqtgraph are absent."""
    code = (
        "import sys, pkgutil, importlib\n"
        "for m in ('PySide6', 'shiboken6', 'pyqtgraph'): sys.modules[m] = None\n"
        "import sos_core\n"
        "for info in pkgutil.walk_packages(sos_core.__path__, 'sos_core.'):\n"
        "    importlib.import_module(info.name)\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
