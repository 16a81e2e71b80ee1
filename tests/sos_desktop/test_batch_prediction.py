"""Worklist ▸ Predict all with the real model: every case predicted in the background, rows and
review-priority order updated as results arrive, progress, cancel, unreadable cases skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sos_core.imaging import open_study
from sos_core.worklist import order_worklist, with_label, with_prediction
from sos_desktop.main_window import MainWindow


def _cases(folder: Path, n: int) -> Path:
    """`n` different synthetic radiographs (a bright block at a different place in each)."""
    folder.mkdir()
    rng = np.random.default_rng(11)
    for i in range(n):
        img = rng.normal(900, 80, (72, 90))
        y, x = 8 + 7 * i, 10 + 9 * i
        img[y : y + 16, x : x + 20] += 900 + 150 * i
        Image.fromarray(np.clip(img, 0, 65535).astype(np.uint16)).save(folder / f"c{i}.png")
    return folder


def _open_worklist(qtbot: Any, win: MainWindow, folder: Path) -> None:
    qtbot.waitUntil(lambda: win.sink is not None, timeout=10000)  # its status line comes first
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(folder)
    qtbot.waitUntil(lambda: win.result is not None, timeout=30000)  # the first case's own


def test_predict_all_updates_every_row_live_and_reorders_by_priority(
    qtbot: Any, make_window: Any, tmp_path: Path, trained_student: Path, predictor: Any
) -> None:
    folder = _cases(tmp_path / "cases", 6)
    win = make_window(model_dir=trained_student)
    _open_worklist(qtbot, win, folder)
    first = win.case.case_id
    reviewed = with_label(win.worklist.entry(first), 0, "Dr A")
    win.worklist.update_entry(reviewed)  # a reviewed case: Predict all must not undo that
    initial = {e.case_id: e for e in win.worklist.entries()}
    assert [e.status for e in initial.values()].count("new") == 5
    assert reviewed.status in ("confirmed", "corrected")
    steps: list[tuple[list[str], list[str], int]] = []

    def on_item(_case_id: str) -> None:
        entries = win.worklist.entries()
        core_order = [e.case_id for e in order_worklist(entries)]
        done = sum(e.status != "new" for e in entries)
        steps.append((win.worklist.visible_order(), core_order, done))

    win.batch.item_shown.connect(on_item)
    progress: list[int] = []
    win.worklist.batch_progress.valueChanged.connect(progress.append)
    with qtbot.waitSignal(win.batch.ended, timeout=60000) as blocker:
        assert win.batch.start() is not None
        assert not win.worklist.batch_progress.isHidden()
        assert not win.worklist.predict_button.isEnabled()
    summary = blocker.args[0]
    assert (summary.predicted, summary.failed) == (6, 0)
    assert progress[-1] == 100
    assert win.worklist.batch_progress.isHidden()
    assert win.status_text.text() == "Predicted 6 of 6 cases."
    # live: after every result the rows on screen were already in the core's priority order,
    # with one more case out of "new" each time (the reviewed one was never "new")
    assert [done for _, _, done in steps] == [2, 3, 4, 5, 6, 6]
    for shown, core, _ in steps:
        assert shown == core

    # each row shows what the Predictor returns for that image, and the final order is the
    # priority order of those predictions, computed here independently of the window
    expected_entries = []
    for case_id, entry in initial.items():
        expected = predictor.predict(open_study(entry.path))
        row = win.worklist.entry(case_id)
        assert row.predicted_stage == expected.stage
        assert row.probabilities == pytest.approx(expected.probabilities, abs=1e-6)
        assert row.flags == expected.flags
        expected_entries.append(
            with_prediction(entry, expected.stage, expected.probabilities, expected.flags)
        )
    assert win.worklist.entry(first).status == reviewed.status  # still reviewed
    expected_order = [e.case_id for e in order_worklist(expected_entries)]
    assert win.worklist.visible_order() == expected_order
    assert expected_order[-1] == first  # reviewed cases last


def test_predict_all_can_be_cancelled_and_skips_unreadable_cases(
    qtbot: Any, make_window: Any, tmp_path: Path, trained_student: Path
) -> None:
    folder = _cases(tmp_path / "cases", 3)
    (folder / "notes.txt").write_text("not an image\n", encoding="utf-8")
    win = make_window(model_dir=trained_student)
    _open_worklist(qtbot, win, folder)
    with qtbot.waitSignal(win.batch.ended, timeout=60000) as blocker:
        win.batch.start()
    summary = blocker.args[0]
    assert (summary.predicted, summary.failed) == (3, 1)
    assert "1 could not be opened" in win.status_text.text()
    bad = next(e for e in win.worklist.entries() if e.path.name == "notes.txt")
    assert bad.status == "new"

    with qtbot.waitSignal(win.batch.ended, timeout=60000) as blocker:
        win.batch.start()
        win.worklist.batch_cancel.click()  # before the worker can have reached the last case
    assert blocker.args[0] is None
    assert "cancelled" in win.status_text.text()
    assert not win.batch.running


def test_predict_all_without_a_model_says_so(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    from sos_desktop.prediction_service import NO_MODEL_SENTENCE

    folder = _cases(tmp_path / "cases", 2)
    win = make_window()  # no model folder
    qtbot.waitUntil(lambda: win.sink is not None, timeout=10000)
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(folder)
    with qtbot.waitSignal(win.batch.ended, timeout=20000) as blocker:
        win.batch.start()
    assert blocker.args[0] is None
    assert win.status_text.text() == f"Predict all stopped. {NO_MODEL_SENTENCE}"
    assert all(e.status == "new" for e in win.worklist.entries())
    assert win.worklist.predict_button.isEnabled()
