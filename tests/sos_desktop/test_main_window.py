"""User flows in the main window: open, errors, worklist, series choice, drop, export, help.

The review store, the real model and "Predict all" have their own flow tests
(test_review_store_flow.py, test_model_flow.py, test_batch_prediction.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from sos_desktop.main_window import MainWindow
from sos_desktop.prediction_service import NO_MODEL_SENTENCE
from tests.sos_desktop.doubles import StubPredictor
from tests.sos_desktop.study_fixtures import write_truncated_dicom


def _open(qtbot: Any, win: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(path)


def _wait_prediction(qtbot: Any, win: MainWindow) -> None:
    qtbot.waitUntil(lambda: win.result is not None, timeout=10000)


def _activate(qtbot: Any, win: MainWindow) -> None:
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=3000)


def test_png_is_shown_and_no_model_is_said_in_words(
    qtbot: Any, make_window: Any, png_path: Path
) -> None:
    win = make_window()  # $SOS_MODEL_DIR names a folder that does not exist
    _open(qtbot, win, png_path)
    assert win.viewer.pixels is not None
    assert win.viewer.pixels.shape == (120, 160)
    assert not win.viewer.slice_slider.isVisible()
    qtbot.waitUntil(lambda: win.prediction_panel.message.text() == NO_MODEL_SENTENCE)
    assert "ceph" not in win.windowTitle()  # titles name cases by pseudonymous id (DI-5)
    assert win.case is not None
    assert win.case.case_id in win.windowTitle()


def test_ct_series_starts_on_the_mid_sagittal_slice(
    qtbot: Any, make_window: Any, ct_series: Path
) -> None:
    from sos_core.imaging import open_study
    from sos_core.imaging.midsagittal import find_midsagittal
    from sos_core.imaging.reformat import sagittal_count, sagittal_slice

    win = make_window()
    _open(qtbot, win, ct_series)
    study = open_study(ct_series)
    expected = find_midsagittal(study)
    start = int(getattr(expected, "index", expected))
    slider = win.viewer.slice_slider
    assert slider.isVisible()
    assert (slider.minimum(), slider.maximum()) == (0, sagittal_count(study) - 1)
    assert slider.value() == start
    np.testing.assert_array_equal(win.viewer.pixels, sagittal_slice(study, start).pixels)
    # wheel / keys move through slices and the image follows
    with qtbot.waitSignal(win.viewer.slice_changed, timeout=1000):
        win.step_slice(1)
    np.testing.assert_array_equal(win.viewer.pixels, sagittal_slice(study, start + 1).pixels)


@pytest.mark.parametrize("kind", ["truncated", "not_an_image"])
def test_bad_input_shows_the_error_dialog_and_the_app_stays_usable(
    qtbot: Any, make_window: Any, png_path: Path, tmp_path: Path, kind: str, trained_student: Path
) -> None:
    if kind == "truncated":
        bad = write_truncated_dicom(tmp_path / "cut.dcm")
    else:
        bad = tmp_path / "notes.txt"
        bad.write_text("not an image at all\n" * 50, encoding="utf-8")
    win = make_window(model_dir=trained_student)
    with qtbot.waitSignal(win.reporter.error_reported, timeout=20000) as blocker:
        win.open_path(bad)
    rep = blocker.args[0]
    assert rep.title == "Could not open study"
    assert rep.expected, rep.details  # a typed ImagingError, not an internal fault
    assert bad.name in rep.sentence
    box = win.reporter.last_dialog
    assert box is not None
    assert box.isVisible()
    assert not box.isModal()
    assert box.informativeText() == rep.sentence
    assert "Traceback" in box.detailedText()
    # still usable: the next study opens and is predicted, the dialog did not block it
    _open(qtbot, win, png_path)
    _wait_prediction(qtbot, win)
    assert win.viewer.pixels is not None


def test_folder_of_cases_opens_as_a_worklist_and_save_moves_on(
    qtbot: Any, make_window: Any, tmp_path: Path, settings: Any
) -> None:
    """Uses the StubPredictor: the test needs a scripted flagged prediction."""
    folder = tmp_path / "cases"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 50), 40 * i, np.uint8)).save(folder / f"c{i}.png")
    settings.reviewer = "Dr Test"
    win = make_window(StubPredictor(stage=0, flags=("between_stages",)))
    _open(qtbot, win, folder)
    assert win.worklist.isVisible()
    assert len(win.worklist.entries()) == 3
    _wait_prediction(qtbot, win)
    first = win.case.case_id
    qtbot.waitUntil(lambda: win.worklist.entry(first).status == "flagged")
    qtbot.waitUntil(lambda: win.sink is not None)  # the review store has opened
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.review_panel.confirm()
    assert win.case.case_id != first
    assert win.worklist.entry(first).status == "confirmed"
    assert win.worklist.entry(first).reviewer == "Dr Test"
    assert win.worklist.visible_order()[-1] == first  # reviewed cases sink to the bottom


def test_a_failed_open_keeps_the_worklist_and_the_current_case(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "cases"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((30, 40), 60 * i, np.uint8)).save(folder / f"c{i}.png")
    bad = tmp_path / "notes.txt"
    bad.write_text("no image here\n", encoding="utf-8")
    win = make_window()
    _open(qtbot, win, folder)
    current = win.case.case_id
    with qtbot.waitSignal(win.load_failed, timeout=20000):
        win.open_path(bad)
    assert win.worklist.isVisible()
    assert len(win.worklist.entries()) == 2
    assert win.case.case_id == current
    assert win.viewer.pixels is not None
    win.reporter.close_dialogs()


def test_a_folder_with_two_series_asks_which_one(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from tests.sos_desktop.study_fixtures import write_ct_series

    folder = tmp_path / "two"
    write_ct_series(folder, n=6, rows=16, cols=20, prefix="A")
    write_ct_series(folder, n=8, rows=16, cols=24, seed=1, prefix="B")
    offered: list[list[Any]] = []

    def choose(series: list[Any]) -> str:
        offered.append(series)
        return next(s.key for s in series if s.n_files == 8)

    win = make_window(choose_series=choose)
    _open(qtbot, win, folder)
    assert [s.n_files for s in offered[0]] == [6, 8] or [s.n_files for s in offered[0]] == [8, 6]
    assert win.case.study.shape == (8, 16, 24)


def test_dropping_a_file_opens_it(qtbot: Any, make_window: Any, png_path: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    win = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png_path))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.dropEvent(event)
    assert win.viewer.pixels.shape == (120, 160)


def test_help_lists_every_review_key(qtbot: Any, make_window: Any) -> None:
    from sos_desktop import actions

    win = make_window()
    table = dict(actions.shortcut_table(win.actions_by_key))
    for key in ("0", "1", "2", "3", "Return, Enter", "Ctrl+Z", "N", "P", "F1", "Ctrl+Shift+P"):
        assert key in table, key
    assert "Predict all cases of the worklist" in table.values()
    assert table["D"] == "Draw the SOS box"
    assert table["Shift+drag"] == "Draw the SOS crop box"


def test_key_d_arms_box_drawing_once_an_image_is_shown(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    win = make_window()
    button = win.viewer.draw_box_button
    assert not button.isEnabled()  # nothing to draw on yet: the key does nothing
    win.actions_by_key["draw_box"].trigger()
    assert not button.isChecked()
    png = tmp_path / "img.png"
    Image.fromarray(np.linspace(0, 255, 120 * 160).reshape(120, 160).astype(np.uint8)).save(png)
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(png)
    win.actions_by_key["draw_box"].trigger()
    assert button.isChecked()
    win.actions_by_key["draw_box"].trigger()  # pressing again disarms it
    assert not button.isChecked()


def test_the_app_does_not_import_torch_at_start() -> None:
    import subprocess
    import sys

    code = "import sys, sos_desktop.app, sos_desktop.main_window; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
