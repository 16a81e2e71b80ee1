"""Review flows against a real review store and the real (tiny) model: keyboard confirm and
correct, undo, the burn-in question, a store that is not ours, and exports carrying the model
version. What the window wrote is read back through the store's own API."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QPushButton

from sos_core.review import ReviewStore
from sos_desktop.main_window import MainWindow
from sos_desktop.store_controller import NEW_STORE_TEXT, OPEN_FAILED_TITLE


def _open(qtbot: Any, win: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(path)
    qtbot.waitUntil(lambda: win.result is not None, timeout=30000)


def _activate(qtbot: Any, win: MainWindow) -> None:
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=3000)


def _key_and_wait(qtbot: Any, win: MainWindow, signal: Any, key: Qt.Key, mod: Any = None) -> Any:
    with qtbot.waitSignal(signal, timeout=10000) as blocker:
        if mod is None:
            qtbot.keyClick(win, key)
        else:
            qtbot.keyClick(win, key, mod)
    return blocker.args[0] if blocker.args else None


@pytest.mark.req("DB-2", "RG-1", "DI-3")
def test_keyboard_review_writes_labels_to_the_store_and_undo_appends(
    qtbot: Any, make_window: Any, png_path: Path, settings: Any, trained_student: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings.reviewer = "Dr Test"
    win = make_window(model_dir=trained_student)
    qtbot.waitUntil(lambda: win.sink is not None, timeout=10000)  # the store opened
    _open(qtbot, win, png_path)
    result = win.result
    predicted = result.prediction.stage
    panel = win.review_panel
    # a PNG has no header: the reviewer is asked, once, about burned-in identifiers (DI-3)
    qtbot.waitUntil(lambda: not panel.burn_in.isHidden(), timeout=10000)
    qtbot.mouseClick(panel.burn_in, Qt.MouseButton.LeftButton, pos=panel.burn_in.rect().center())
    assert panel.burn_in.isChecked()
    suggested = win.viewer.crop_box()
    _activate(qtbot, win)

    with qtbot.waitSignal(panel.saved, timeout=10000):
        qtbot.keyClick(win, Qt.Key.Key_Return)
        # asked, not acknowledged: "saved" waits for the store (DB-2)
        assert panel.status.text().startswith("Saving")
    assert panel.status.text().startswith(f"Saved: stage {predicted} by Dr Test")

    # the expert moves the crop box and picks another stage by key: a correction with that box
    corrected = (predicted + 2) % 4
    win.viewer.set_crop_box((10.0, 20.0, 70.0, 60.0))
    qtbot.keyClick(win, getattr(Qt.Key, f"Key_{corrected}"))
    assert panel.selected_stage == corrected
    _key_and_wait(qtbot, win, panel.saved, Qt.Key.Key_Enter)
    _key_and_wait(qtbot, win, win.labels.undone, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.selected_stage == predicted  # the confirmation is in force again

    with ReviewStore.open(tmp_path / "store") as store:
        (case,) = store.cases()
        assert case.modality == "PNG"
        assert case.burn_in == "confirmed"
        (pred,) = store.predictions_for_case(case.case_id)
        assert (pred.stage, pred.model_version) == (predicted, result.model_version)
        first, second, third = store.labels_for_case(case.case_id)
        assert (first.stage, first.reviewer, first.reason, first.box_source) == (
            predicted,
            "Dr Test",
            "confirmed",
            "suggested",
        )
        assert first.box == pytest.approx(_clip(suggested, case.shape))
        assert (first.prediction_id, first.model_version) == (pred.id, result.model_version)
        assert (second.stage, second.reason, second.box_source) == (
            corrected,
            "model_error",
            "expert",
        )
        assert second.box == pytest.approx((10.0, 20.0, 70.0, 60.0))
        assert second.supersedes == first.id
        # undo appended a row that supersedes the correction and restores the confirmation
        assert (third.supersedes, third.stage, third.box) == (second.id, predicted, first.box)
        assert store.current_label(case.case_id) == third

    # the confirmation was the case's first label: undo withdraws it with a retraction row
    undone = _key_and_wait(
        qtbot, win, win.labels.undone, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
    )
    assert undone.latest is None
    with ReviewStore.open(tmp_path / "store") as store:
        case_id = store.cases()[0].case_id
        assert len(store.labels_for_case(case_id)) == 3  # nothing deleted
        (retraction,) = store.retractions_for_case(case_id)
        assert retraction.label_id == third.id
        assert store.current_label(case_id) is None
        assert len(store.queue()) == 0


def _clip(box: Any, shape: tuple[int, int]) -> tuple[float, ...]:
    rows, cols = shape
    x0, y0, x1, y1 = box
    return (max(0.0, x0), max(0.0, y0), min(float(cols), x1), min(float(rows), y1))


def test_reviewer_is_asked_once_and_kept(
    qtbot: Any, make_window: Any, png_path: Path, settings: Any, trained_student: Path
) -> None:
    asked: list[int] = []

    def ask() -> str:
        asked.append(1)
        return "  Dr Once "

    win = make_window(model_dir=trained_student, ask_reviewer=ask)
    qtbot.waitUntil(lambda: win.sink is not None, timeout=10000)
    _open(qtbot, win, png_path)
    for _ in range(2):
        with qtbot.waitSignal(win.review_panel.saved, timeout=10000):
            win.review_panel.confirm()
    assert asked == [1]
    assert settings.reviewer == "Dr Once"
    assert win.labels.latest(win.case.case_id).decision.reviewer == "Dr Once"


def _foreign_db(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "review.sqlite3"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.execute("INSERT INTO invoices (total) VALUES (12.5)")
    con.commit()
    con.close()
    return path


def _too_new_store(folder: Path) -> Path:
    ReviewStore.open(folder).close()
    path = folder / "review.sqlite3"
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 999")
    con.close()
    return path


@pytest.mark.req("DB-7")
@pytest.mark.parametrize(
    ("make_db", "words"),
    [(_foreign_db, "database of another program"), (_too_new_store, "newer version")],
)
def test_a_store_that_is_not_ours_is_refused_untouched_and_the_app_stays_usable(
    qtbot: Any, make_window: Any, png_path: Path, settings: Any, trained_student: Path,
    tmp_path: Path, make_db: Any, words: str,
) -> None:  # fmt: skip
    db = make_db(tmp_path / "other")
    before = (db.read_bytes(), db.stat().st_mtime_ns, sorted(p.name for p in db.parent.iterdir()))
    settings.data_folder = db.parent
    settings.reviewer = "Dr Test"
    win = make_window(model_dir=trained_student)
    qtbot.waitUntil(lambda: bool(win.reporter.reports), timeout=10000)
    (rep,) = win.reporter.reports
    assert rep.title == OPEN_FAILED_TITLE
    assert rep.expected  # a typed StoreError sentence, not an internal fault
    assert words in rep.sentence
    assert rep.actions == (NEW_STORE_TEXT,)
    box = win.reporter.last_dialog
    assert box is not None
    assert not box.isModal()
    assert NEW_STORE_TEXT in [b.text() for b in box.findChildren(QPushButton)]
    assert win.sink is None
    win.reporter.close_dialogs()

    # still usable: a study opens and is predicted; a save says why it cannot be stored
    _open(qtbot, win, png_path)
    with qtbot.waitSignal(win.reporter.error_reported, timeout=10000) as blocker:
        win.review_panel.confirm()
    assert "No review store is open" in blocker.args[0].sentence
    win.reporter.close_dialogs()

    # "Start a new store elsewhere…" opens a new store; the refused file is never touched
    new = tmp_path / "new-store"
    with qtbot.waitSignal(win.store.opened, timeout=10000):
        win.store.start_new_store(new)
    assert settings.data_folder == new
    with qtbot.waitSignal(win.review_panel.saved, timeout=10000):
        win.review_panel.confirm()
    with ReviewStore.open(new) as store:
        (case,) = store.cases()
        assert len(store.labels_for_case(case.case_id)) == 1
    after = (db.read_bytes(), db.stat().st_mtime_ns, sorted(p.name for p in db.parent.iterdir()))
    assert after == before


@pytest.mark.req("DB-2")
def test_the_data_folder_setting_is_the_store_location(
    qtbot: Any, make_window: Any, png_path: Path, settings: Any, tmp_path: Path
) -> None:
    settings.reviewer = "Dr Move"
    win = make_window()  # no model: a label given by hand
    qtbot.waitUntil(lambda: win.sink is not None, timeout=10000)
    assert win.store.location == tmp_path / "store"  # $SOS_DATA_DIR, the default data folder
    previous = settings.data_folder
    settings.data_folder = tmp_path / "elsewhere"
    with qtbot.waitSignal(win.store.opened, timeout=10000):
        win.apply_settings(previous)
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(png_path)
    win.viewer.set_crop_box((20.0, 30.0, 60.0, 70.0))  # no suggestion: the expert draws it
    win.review_panel.choose_stage(2)
    with qtbot.waitSignal(win.review_panel.saved, timeout=10000) as blocker:
        win.review_panel.save()
    assert blocker.args[0].decision.decision == "label"
    with ReviewStore.open(tmp_path / "elsewhere") as store:
        (case,) = store.cases()
        (label,) = store.labels_for_case(case.case_id)
        assert (label.stage, label.reviewer, label.model_version) == (2, "Dr Move", None)
        assert label.box == pytest.approx((20.0, 30.0, 60.0, 70.0))


def _pdf_creator(data: bytes) -> str:
    start = data.index(b"/Creator (") + len(b"/Creator (")
    raw = data[start : data.index(b")\n", start)]
    return raw.decode("utf-16") if raw.startswith(b"\xfe\xff") else raw.decode("latin-1")


def test_exports_carry_the_model_version(
    qtbot: Any, make_window: Any, png_path: Path, tmp_path: Path, trained_student: Path,
    predictor: Any,
) -> None:  # fmt: skip
    win = make_window(model_dir=trained_student)
    _open(qtbot, win, png_path)
    version = predictor.version
    assert win.result.model_version == version
    with qtbot.waitSignal(win.exports.exported, timeout=10000):
        win.exports.export("png", tmp_path / "out" / "case.png")
    png = Image.open(tmp_path / "out" / "case.png")
    assert png.text["Model version"] == version  # RG-3: machine-readable as well
    img = np.asarray(png.convert("RGB"))
    assert img.shape[0] > 120 + 60  # image plus a footer band
    assert img.shape[1] >= 160
    with qtbot.waitSignal(win.exports.exported, timeout=10000):
        win.exports.export("pdf", tmp_path / "out" / "case.pdf")
    pdf = (tmp_path / "out" / "case.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Count 1") == 1  # one page
    assert version in _pdf_creator(pdf)
    lines = win.exports.report_lines()
    assert f"Model version {version}, run on CPU" in lines
    p = win.result.prediction
    assert any(line.startswith(f"Predicted stage {p.stage} ({p.stage_name})") for line in lines)
