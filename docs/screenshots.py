"""Drive SOS Review through a review session and save screenshots of its main states.

Run it under a virtual display, from the repository root:

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots.py [PATH]

PATH defaults to the bundled sample (`resources/samples/`) when it holds cases; while it is
empty, a small synthetic demo (a lateral image and a CT series, no patient data) is written to a
temporary folder instead. The embedded model (`resources/models/student`) makes the predictions
when it exists; without it the app shows its "no model" sentence and the review is done by hand.
Settings and the review store live in a temporary folder, so your own preferences and labels are
untouched. Screenshots go to `docs/screenshots/`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from resources import resource_path  # noqa: E402
from sos_desktop.app import build_app, sample_folder, startup_path  # noqa: E402
from sos_desktop.dialogs import ShortcutsDialog  # noqa: E402
from sos_desktop.error_boundary import install_reporter  # noqa: E402
from sos_desktop.main_window import MainWindow  # noqa: E402
from sos_desktop.prediction_service import PredictionService  # noqa: E402
from sos_desktop.settings import AppSettings  # noqa: E402
from sos_desktop.settings_dialog import SettingsDialog  # noqa: E402

logger = logging.getLogger("screenshots")
OUT = ROOT / "docs" / "screenshots"


def wait_until(done: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Run the event loop until `done()` holds (polled every 20 ms), or fail."""
    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: loop.quit() if done() or time.monotonic() > deadline else None)
    timer.start()
    if not done():
        loop.exec()
    timer.stop()
    if not done():
        raise TimeoutError("the app did not reach the expected state in time")


def settle(ms: int = 300) -> None:
    """Let queued events and repaints run for `ms` milliseconds."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def save(widget: QWidget | None, name: str) -> Path:
    """Grab `widget` (None: the whole screen, dialogs included) into docs/screenshots/."""
    settle()
    path = OUT / f"{name}.png"
    if widget is None:
        QGuiApplication.primaryScreen().grabWindow(0).save(str(path))
    else:
        widget.grab().save(str(path))
    logger.info("saved %s", path.name)
    return path


def demo_cases(folder: Path) -> Path:
    """A tiny synthetic worklist: one lateral image (PNG) and one CT series."""
    from PIL import Image

    from tests.sos_desktop.study_fixtures import ct_slice

    rows, cols = 360, 420
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    skull = ((x - 210) / 180) ** 2 + ((y - 170) / 150) ** 2
    img = np.where(skull < 1.0, 70.0, 10.0) + np.where(np.abs(skull - 0.95) < 0.05, 150.0, 0.0)
    # an oblique cranial-base bar with a thin dark gap where the synchondrosis would be
    along = (x - 230) * 0.6 + (y - 210) * 0.8
    across = -(x - 230) * 0.8 + (y - 210) * 0.6
    bar = (np.abs(across) < 14) & (np.abs(along) < 70)
    img[bar] = 200.0
    img[bar & (np.abs(along) < 3)] = 60.0
    img += np.random.default_rng(0).normal(0, 6, img.shape)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / "lateral_demo.png")
    series = folder / "cbct_demo"
    series.mkdir(exist_ok=True)
    from pydicom.uid import generate_uid

    # Axial slices (rows: anterior -> posterior, columns: right -> left) of a head whose every
    # sagittal plane is the lateral image, fading towards both sides; z grows superior.
    lateral = np.asarray(Image.fromarray(img.astype(np.float32)).resize((240, 120)))
    n_lr = 100
    fade = np.clip(1.0 - np.linspace(-1.1, 1.1, n_lr) ** 2, 0.0, 1.0)
    uid = generate_uid()
    for k in range(lateral.shape[0]):
        si_row = lateral[lateral.shape[0] - 1 - k]  # slice k is k mm above the lowest one
        axial = si_row[::-1, None] * fade[None, :] * 6.0 + 24.0  # row 0 = most anterior
        ct_slice(np.clip(axial, 0, 4095).astype(np.uint16), float(k), uid, k + 1).save_as(
            series / f"IM{k:04d}.dcm", enforce_file_format=True
        )
    return folder


def embedded_model() -> Path | None:
    """The embedded student model folder, or None while it has not been trained."""
    folder = resource_path("models/student")
    return folder if (folder / "model.json").is_file() else None


def make_window(settings: AppSettings) -> MainWindow:
    """The app's window; the real Predictor on the embedded model when there is one."""
    model = embedded_model()
    if model is None:
        logger.info("no embedded model yet: the screenshots show the app without predictions")
        # a folder that does not exist: the app's own "no model" path, whatever $SOS_MODEL_DIR says
        service = PredictionService(model_dir=settings.data_folder / "no-model")
    else:
        logger.info("predicting with the embedded model")
        service = PredictionService(model_dir=model, device=settings.device)
    return MainWindow(settings, prediction=service)


def review(win: MainWindow, shown: list[str]) -> None:
    """Confirm the first case, then correct it and undo the correction (04, 05)."""
    saved: list[object] = []
    win.review_panel.saved.connect(saved.append)
    undone: list[object] = []
    win.labels.undone.connect(undone.append)

    def idle() -> bool:
        return not win.opener.busy and not win.prediction.busy

    def save_and_wait() -> None:
        n_saved = len(saved)
        panel = win.review_panel
        if panel.burn_in.isVisible() and panel.burn_in.isEnabled():
            panel.burn_in.setChecked(True)  # the demo images carry no identifiers
        win.confirm_or_save()
        wait_until(lambda: len(saved) > n_saved)
        settle(100)  # the next case (if any) starts opening
        wait_until(idle)

    wait_until(lambda: win.sink is not None)  # the review store is open
    assert win.case is not None
    first = win.case.case_id
    if win.review_panel.predicted_stage is None:
        win.review_panel.choose_stage(2)
    save_and_wait()
    settle(600)
    save(win, "04-after-save")
    if win.case is not None and win.case.case_id != first:  # back to the confirmed case
        n = len(shown)
        win.open_case(first)
        wait_until(lambda: len(shown) > n and not win.prediction.busy)
    chosen = win.review_panel.selected_stage
    win.review_panel.choose_stage(((chosen if chosen is not None else 2) + 1) % 4)
    save_and_wait()  # a correction, superseding the confirmation
    win.review_panel.undo()  # withdrawn by a new row that restores the confirmation
    wait_until(lambda: bool(undone))
    settle(100)
    wait_until(idle)
    settle(600)
    save(win, "05-after-undo")


def show_case(win: MainWindow, shown: list[str], case_id: str, name: str) -> None:
    """Open a worklist case, wait for its prediction, save a screenshot."""
    n = len(shown)
    win.open_case(case_id)
    wait_until(lambda: len(shown) > n and not win.prediction.busy)
    settle(600)
    save(win, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, help="study or folder (default: sample)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="sos-screens-"))
    path = startup_path(args.path) or demo_cases(tmp / "demo")
    if path == sample_folder():
        logger.info("using the bundled sample")
    app = build_app()
    settings = AppSettings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    settings.reviewer = "Dr Demo"
    settings.age_hint_enabled = True
    settings.data_folder = tmp / "store"
    win = make_window(settings)
    install_reporter(win.reporter)
    win.resize(1500, 920)
    win.move(20, 20)
    win.show()
    save(win, "01-start-empty")

    shown: list[str] = []
    win.case_shown.connect(shown.append)
    win.open_path(path)
    wait_until(lambda: bool(shown) and not win.prediction.busy)
    settle(600)
    save(win, "02-first-case")

    volumes = [e for e in win.worklist.entries() if e.path.is_dir()]
    if volumes:
        show_case(win, shown, volumes[0].case_id, "03-cbct-mid-sagittal")

    review(win, shown)

    bad = tmp / "notes.txt"
    bad.write_text("this is not an image\n" * 20, encoding="utf-8")
    errors = len(win.reporter.reports)
    win.open_path(bad)
    wait_until(lambda: len(win.reporter.reports) > errors)
    dialog = win.reporter.last_dialog
    if dialog is not None:
        dialog.move(win.x() + 400, win.y() + 300)
    save(None, "06-error-dialog")
    win.reporter.close_dialogs()

    from sos_desktop import actions

    shortcuts = ShortcutsDialog(actions.shortcut_table(win.actions_by_key), win)
    for name, dlg in (
        ("07-shortcuts", shortcuts),
        ("08-about", win.models.show_about()),
        ("09-settings", SettingsDialog(settings, win)),
    ):
        dlg.show()
        save(dlg, name)
        dlg.close()

    exported: list[Path] = []
    win.exports.exported.connect(exported.append)
    if win.exports.export("png", OUT / "10-export.png") is not None:
        wait_until(lambda: bool(exported))

    if win.worklist.entries():
        ended: list[object] = []
        win.batch.ended.connect(ended.append)
        win.batch.start()
        wait_until(lambda: bool(ended), timeout_s=300)
        settle(600)
        save(win, "11-predict-all")
        cephs = [e for e in win.worklist.entries() if e.modality == "ceph"]
        if cephs:
            show_case(win, shown, cephs[0].case_id, "12-cephalogram")
    win.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
