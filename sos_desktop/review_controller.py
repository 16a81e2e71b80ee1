"""What happens around a saved or undone label: the reviewer's name, worklist status, next case.

The `ReviewPanel` asks for labels to be written; this controller keeps the rest of the window in
step with what the label service reports (Slicer's widget / logic split inside the desktop): it
captures what the viewer shows when a label is saved, asks the store about a case when it is
shown (its label in force, whether it needs a burn-in confirmation) and relays store failures to
the error boundary. Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QInputDialog

from sos_core.worklist import with_label, without_label
from sos_desktop.label_service import UndoResult
from sos_desktop.label_sink import CaseImage, ReviewInputs, SavedLabel
from sos_desktop.workers import TaskError

if TYPE_CHECKING:
    from sos_desktop.main_window import MainWindow

logger = logging.getLogger(__name__)


class ReviewController(QObject):
    """Asks for the reviewer once, updates the worklist, and moves to the next case."""

    def __init__(self, win: MainWindow, ask_reviewer: Callable[[], str | None] | None) -> None:
        super().__init__(win)
        self.win = win
        self.ask_reviewer = ask_reviewer or self._ask_reviewer_name

    def connect_services(self) -> None:
        """Wire the label service (after the window built its panels)."""
        labels = self.win.labels
        labels.undone.connect(self.on_label_undone)
        labels.failed.connect(self._on_failed)
        labels.sink_changed.connect(self.look_up_current)  # a store opened: ask it again

    def reviewer(self) -> str | None:
        """The reviewer's name from settings; asked once and then kept."""
        name = self.win.settings.reviewer
        if not name:
            name = (self.ask_reviewer() or "").strip()
            if name:
                self.win.settings.reviewer = name
        return name or None

    def _ask_reviewer_name(self) -> str | None:
        name, ok = QInputDialog.getText(
            self.win, "Reviewer", "Your name, as it should appear on labels:"
        )
        return name if ok else None

    def age_hint_sex(self) -> str | None:
        """The sex to show the forensic age hint for, or None when the hint is off."""
        s = self.win.settings
        return s.age_hint_sex if s.age_hint_enabled else None

    # --- what a label is made of --------------------------------------------------------------
    def case_image(self) -> CaseImage | None:
        """The displayed image of the current case, as the store will keep it."""
        win, v = self.win, self.win.viewer
        if win.case is None or v.pixels is None:
            return None
        pixels = np.asarray(v.pixels)
        return CaseImage(win.case.study, pixels, v.spacing, v.current_slice)

    def inputs(self) -> ReviewInputs:
        """What the viewer shows now: crop box, slice, image, and the prediction on it."""
        win, v = self.win, self.win.viewer
        result = win.result
        on_case = result is not None and win.case is not None and result.case_id == win.case.case_id
        return ReviewInputs(
            box=v.crop_box(),
            slice_index=v.current_slice,
            image=self.case_image(),
            prediction=result.prediction if on_case and result is not None else None,
            suggested=v.boxes.suggested,
        )

    def look_up_current(self) -> None:
        """Ask the store what it knows about the case now shown (answer: `looked_up`)."""
        if self.win.case is not None:
            self.win.labels.lookup(self.win.case.case_id, self.case_image())

    # --- after the store answered ----------------------------------------------------------
    def on_label_saved(self, label: object) -> None:
        if not isinstance(label, SavedLabel):
            return
        win, d = self.win, label.decision
        nxt = win.worklist.next_case_id(1)  # before the entry re-sorts
        entry = win.worklist.entry(d.case_id)
        if entry is not None:
            win.worklist.update_entry(with_label(entry, d.stage, d.reviewer))
        win.status_text.setText(f"Saved stage {d.stage} ({d.decision}, label {label.label_id}).")
        current = win.case.case_id if win.case is not None else None
        if nxt is not None and nxt != d.case_id and current == d.case_id:
            win.open_case(nxt)

    def on_label_undone(self, result: object) -> None:
        if not isinstance(result, UndoResult):
            return
        win, case_id, still = self.win, result.undone.decision.case_id, result.latest
        in_force = (
            f"stage {still.decision.stage} is in force again"
            if still
            else "the case is unlabelled again"
        )
        win.status_text.setText(f"Undone label {result.undone.label_id}; {in_force}.")
        entry = win.worklist.entry(case_id)
        if entry is not None:
            restored = without_label(entry)
            if still is not None:
                restored = with_label(restored, still.decision.stage, still.decision.reviewer)
            win.worklist.update_entry(restored)
        current = win.case.case_id if win.case is not None else None
        if current != case_id and entry is not None:  # the panel updates the current case itself
            win.open_case(case_id)

    def _on_failed(self, title: str, error: object) -> None:
        if isinstance(error, TaskError):
            self.win.reporter.report_task_error(title, error)
