"""`sos-review --self-test`: the installed app checks itself and exits, without any window.

The core self-test (`sos_core.self_test`) stages the bundled sample with the embedded model on
the CPU; this module adds what only the desktop needs (Qt starting on the offscreen platform, the
main window's modules, the platform plugin this system displays with) and turns the outcome into
one line and an exit status. Used by `installer/build_linux.sh` after every build and by support
on a clinic's machine. Thread affinity: GUI thread (it may create the QApplication).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from sos_core.errors import SosError

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 1
# The platform plugin the app needs to show its window on each system (file name prefix).
DISPLAY_PLUGINS = {"linux": "libqxcb", "win32": "qwindows", "darwin": "libqcocoa"}


def check_qt() -> None:
    """Start Qt offscreen, import the main window, and find this system's display plugin."""
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # headless: no display is needed or used
    from sos_desktop.app import build_app

    app = build_app([sys.argv[0] if sys.argv else "sos-review"])
    import sos_desktop.main_window  # noqa: F401 - every module the window needs is importable

    prefix = DISPLAY_PLUGINS.get(sys.platform)
    # Qt looks in every library path (its own plugin folder, $QT_PLUGIN_PATH, the bundle's).
    found = [p for folder in app.libraryPaths() for p in (Path(folder) / "platforms").glob("*")]
    if prefix and not any(p.name.startswith(prefix) for p in found):
        raise SosError(
            f"Qt's display plugin {prefix} is missing from this copy of SOS Review, so its "
            "window cannot open; reinstall it."
        )


def run(model_dir: Path | None = None, *, out: TextIO | None = None) -> int:
    """Run every check; print one line (on `out`, default stdout) and return the exit status."""
    from sos_core.self_test import run_self_test

    try:
        result = run_self_test(model_dir=model_dir)
        check_qt()
    except SosError as exc:
        return _report(f"SOS Review self-test FAILED: {exc}", out, EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - the last boundary: one sentence, never a traceback
        logger.debug("self-test fault", exc_info=True)
        return _report(
            f"SOS Review self-test FAILED: an internal fault ({type(exc).__name__}: {exc}).",
            out,
            EXIT_FAILED,
        )
    return _report(result.line(), out, EXIT_OK)


def _report(line: str, out: TextIO | None, status: int) -> int:
    stream = out or (sys.stdout if status == EXIT_OK else sys.stderr)
    if stream is None:  # a windowed Windows build has no console: leave the line in a file
        stream = _fallback_file().open("w", encoding="utf-8")
        with stream:
            stream.write(line + "\n")
        return status
    stream.write(line + "\n")
    stream.flush()
    return status


def _fallback_file() -> Path:
    import platformdirs

    folder = Path(platformdirs.user_log_dir("SOS Review", appauthor=False))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "self-test.txt"
