"""What happens around a saved or undone label: the reviewer's name, worklist status, next case.

The `ReviewPanel` writes labels; this controller keeps the rest of the window in step with them
(Slicer's widget / logic split inside the desktop). Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QInputDialog

from sos_core.worklist import with_label, without_label
from sos_desktop.label_sink import SavedLabel

if TYPE_CHECKING:
    from sos_desktop.main_window import MainWindow

logger = logging.getLogger(__name__)


class ReviewController(QObject):
    """Asks for the reviewer once, updates the worklist, and moves to the next case."""

    def __init__(self, win: MainWindow, ask_reviewer: Callable[[], str | None] | None) -> None:
        super().__init__(win)
        self.win = win
        self.ask_reviewer = ask_reviewer or self._ask_reviewer_name

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

    def on_label_saved(self, label: object) -> None:
        if not isinstance(label, SavedLabel):
            return
        win, d = self.win, label.decision
        nxt = win.worklist.next_case_id(1)  # before the entry re-sorts
        entry = win.worklist.entry(d.case_id)
        if entry is not None:
            win.worklist.update_entry(with_label(entry, d.stage, d.reviewer))
        win.status_text.setText(f"Saved stage {d.stage} ({d.decision}).")
        if nxt is not None and nxt != d.case_id:
            win.open_case(nxt)

    def on_label_undone(self, label: object) -> None:
        if not isinstance(label, SavedLabel):
            return
        win, case_id = self.win, label.decision.case_id
        entry = win.worklist.entry(case_id)
        if entry is not None:
            still = win.sink.latest(case_id)
            restored = without_label(entry)
            if still is not None:
                restored = with_label(restored, still.decision.stage, still.decision.reviewer)
            win.worklist.update_entry(restored)
        if win.case is not None and win.case.case_id == case_id:
            result = win.result
            stage = result.prediction.stage if result else None
            win.review_panel.set_case(case_id, stage, result.model_version if result else None)
        elif entry is not None:
            win.open_case(case_id)
