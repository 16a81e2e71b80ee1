"""`sos-review`: start the desktop app (QApplication, logging, settings, main window).

`build_app` and `create_window` are separate from `main` so tests, the screenshot script and the
installer's self-test (`--self-test`, in `sos_desktop.self_test`) can use them without entering the
event loop.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

import sos_core
from resources import resource_path
from sos_desktop.error_boundary import ErrorReporter, install_excepthook, install_reporter
from sos_desktop.main_window import MainWindow
from sos_desktop.settings import APPLICATION, ORGANISATION, AppSettings

logger = logging.getLogger(__name__)

_configured = False


def configure_pyqtgraph() -> None:
    """Once per process: DICOM arrays are (rows, cols), so ImageItems are row-major."""
    global _configured
    if not _configured:
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
        _configured = True


def configure_logging(verbose: bool = False) -> None:
    """Console logging; case ids only, never names or paths (STYLE G, DI-5)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # A crash in native code (Qt, torch) then leaves the Python stack of every thread on
    # stderr beside the log, instead of a bare "Segmentation fault".
    if not faulthandler.is_enabled():
        faulthandler.enable()


def build_app(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (existing one reused), high-DPI ready, with pyqtgraph configured."""
    # Qt 6 scales by the screen's factor by default; pass fractional factors through unrounded
    # so 150 % displays are sharp (must precede the QApplication).
    if QApplication.instance() is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    assert isinstance(app, QApplication)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("SOS Review")
    app.setApplicationVersion(sos_core.__version__)
    icon = resource_path("icons/sos-review.png")
    if icon.is_file():  # the taskbar/dock icon when started outside the installer's entries
        app.setWindowIcon(QIcon(str(icon)))
    configure_pyqtgraph()
    return app


def sample_folder() -> Path:
    """The bundled sample cases (may be empty in a development checkout)."""
    return resource_path("samples")


def startup_path(path: Path | None) -> Path | None:
    """The path to open at start: the given one, else the bundled sample if it holds files."""
    if path is not None:
        return path
    samples = sample_folder()
    if samples.is_dir() and any(p for p in samples.iterdir() if not p.name.startswith(".")):
        return samples
    return None


def create_window(settings: AppSettings | None = None, *, show_dialogs: bool = True) -> MainWindow:
    """A main window with its own error reporter installed as the app-wide boundary."""
    window = MainWindow(settings or AppSettings(QSettings(ORGANISATION, APPLICATION)))
    window.reporter.show_dialogs = show_dialogs
    install_reporter(window.reporter)
    return window


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sos-review", description="Review SOS fusion stage predictions."
    )
    parser.add_argument(
        "path", nargs="?", type=Path, help="a DICOM file, series folder, DICOMDIR or image"
    )
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--quit-after",
        type=float,
        metavar="SECONDS",
        help="close the window after this many seconds (smoke tests)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation headless (stage the bundled sample), print one line, exit",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sos-review` console script."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        from sos_desktop.self_test import run

        return run()
    configure_logging(args.verbose)
    app = build_app()
    window = create_window()
    reporter: ErrorReporter = window.reporter
    install_excepthook(reporter)
    window.show()
    window.prediction.preload()  # torch and the model load while the first study opens
    first = startup_path(args.path)
    if first is not None:
        QTimer.singleShot(0, lambda: window.open_path(first))
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    logger.info("SOS Review %s started", sos_core.__version__)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
