"""Undo of a case's very first label: the review store withdraws it with a retraction row, so the
case is unlabelled again (out of the retraining queue) while the label row stays (RG-1).
The sink is tested on its own first, then the whole window (keyboard save, Ctrl+Z)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from sos_core.imaging import open_study
from sos_core.review import ReviewStore
from sos_desktop.label_sink import CaseImage, ReviewDecision
from sos_desktop.store_sink import UNDO_NOTE, StoreLabelSink


def _decision(png_path: Path, stage: int, **kw: Any) -> ReviewDecision:
    study = open_study(png_path)
    base: dict[str, Any] = {
        "case_id": "case-a",
        "stage": stage,
        "reviewer": "Dr U",
        "decision": "label",
        "box": (20.0, 15.0, 60.0, 45.0),
        "image": CaseImage(study, study.pixels),
        "no_burned_in": True,  # so the case is queued, not held (DI-3)
    }
    base.update(kw)
    return ReviewDecision(**base)


@pytest.mark.req("RG-1")
def test_undoing_a_cases_first_label_withdraws_it_and_keeps_the_row(
    tmp_path: Path, png_path: Path
) -> None:
    sink = StoreLabelSink.open(tmp_path / "store")
    try:
        saved = sink.save(_decision(png_path, 2))
        store = sink.store
        (case,) = store.cases()
        assert [i.case_id for i in store.queue().items] == [case.case_id]

        undone = sink.undo_last()

        assert undone is not None
        assert (undone.label_id, undone.decision.stage) == (saved.label_id, 2)
        (label,) = store.labels_for_case(case.case_id)  # nothing deleted, nothing added
        assert str(label.id) == saved.label_id
        (retraction,) = store.retractions_for_case(case.case_id)
        assert (retraction.label_id, retraction.reviewer, retraction.note) == (
            label.id,
            "Dr U",
            UNDO_NOTE,
        )
        assert store.current_label(case.case_id) is None
        assert sink.latest("case-a") is None
        assert sink.lookup("case-a", _decision(png_path, 0).image).latest is None
        queue = store.queue()
        assert (len(queue), queue.per_stage, queue.per_reviewer) == (0, {}, {})
        assert sink.undo_last() is None  # nothing left to undo in this session
    finally:
        sink.close()


@pytest.mark.req("RG-1")
def test_undo_walks_back_through_a_correction_to_unlabelled(tmp_path: Path, png_path: Path) -> None:
    sink = StoreLabelSink.open(tmp_path / "store")
    try:
        sink.save(_decision(png_path, 1))
        sink.save(_decision(png_path, 3, decision="correct", reason="artefact"))
        store = sink.store
        (case,) = store.cases()
        sink.undo_last()  # the correction: a row restoring stage 1
        restored = store.current_label(case.case_id)
        assert restored is not None
        assert restored.stage == 1
        sink.undo_last()  # the first label, now standing as the restored row: withdrawn
        assert store.current_label(case.case_id) is None
        assert [r.label_id for r in store.retractions_for_case(case.case_id)] == [restored.id]
        assert len(store.labels_for_case(case.case_id)) == 3
        # saving again afterwards starts the case anew, and that label can be undone too
        again = sink.save(_decision(png_path, 0))
        assert again.supersedes is None
        assert [i.stage for i in store.queue().items] == [0]
        sink.undo_last()
        assert store.current_label(case.case_id) is None
        assert len(store.queue()) == 0
    finally:
        sink.close()


@pytest.mark.req("RG-1")
def test_ctrl_z_withdraws_the_very_first_label_in_the_window(
    qtbot: Any, make_window: Any, png_path: Path, settings: Any, tmp_path: Path
) -> None:
    settings.reviewer = "Dr Undo"
    win = make_window()  # no model: the expert labels by hand
    qtbot.waitUntil(lambda: win.sink is not None, timeout=10000)
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(png_path)
    panel = win.review_panel
    case_id = win.case.case_id
    qtbot.waitUntil(lambda: not panel.burn_in.isHidden(), timeout=10000)
    qtbot.mouseClick(panel.burn_in, Qt.MouseButton.LeftButton, pos=panel.burn_in.rect().center())
    win.viewer.set_crop_box((20.0, 30.0, 60.0, 70.0))
    panel.choose_stage(2)
    with qtbot.waitSignal(panel.saved, timeout=10000):
        panel.save()
    assert win.labels.latest(case_id) is not None
    with ReviewStore.open(tmp_path / "store") as store:
        assert len(store.queue()) == 1

    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=3000)
    with qtbot.waitSignal(win.labels.undone, timeout=10000) as blocker:
        qtbot.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)

    result = blocker.args[0]
    assert result.latest is None  # nothing in force: the case is unlabelled again
    assert not win.reporter.reports  # no refusal
    assert win.labels.latest(case_id) is None
    assert "unlabelled again" in win.status_text.text()
    assert "nothing was deleted" in panel.status.text()
    with ReviewStore.open(tmp_path / "store") as store:
        (case,) = store.cases()
        (label,) = store.labels_for_case(case.case_id)
        assert (label.stage, label.reviewer) == (2, "Dr Undo")
        (retraction,) = store.retractions_for_case(case.case_id)
        assert retraction.label_id == label.id
        assert store.current_label(case.case_id) is None
        queue = store.queue()
        assert (len(queue), queue.per_stage, queue.held_cases) == (0, {}, 0)
        assert store.verify_audit().ok
