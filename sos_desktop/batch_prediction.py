"""Worklist ▸ Predict all: every case opened and predicted in one worker, shown as it arrives.

Each result updates its worklist row (status, predicted stage) as soon as it comes back, so
the review-priority order changes live; progress and Cancel sit under the worklist. A case that
cannot be opened is skipped and counted; a missing model ends the run with one sentence.
Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from sos_core.worklist import with_prediction
from sos_desktop.error_boundary import describe
from sos_desktop.prediction_service import BatchItem, BatchSummary, PredictionService
from sos_desktop.workers import Task, TaskError

if TYPE_CHECKING:
    from sos_desktop.main_window import MainWindow

logger = logging.getLogger(__name__)


class BatchPredictionController(QObject):
    """Signals: `item_shown(str)` after a case's row was updated, `ended(object)` with the
    `BatchSummary` (None when cancelled or stopped by an error)."""

    item_shown = Signal(str)
    ended = Signal(object)

    def __init__(self, win: MainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.task: Task | None = None
        self._total = 0
        self._seen = 0
        win.worklist.predict_all_requested.connect(self.start)
        win.worklist.cancel_requested.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done

    def start(self) -> Task | None:
        """Predict every worklist case, in the order shown; None when there is nothing to do."""
        win = self.win
        if self.running:
            return self.task
        shown = win.worklist.visible_order()
        entries = sorted(
            win.worklist.entries(),
            key=lambda e: shown.index(e.case_id) if e.case_id in shown else len(shown),
        )
        if not entries:
            win.status_text.setText("Open a folder of cases to predict them all.")
            return None
        self._total, self._seen = len(entries), 0
        task = win.prediction.request_batch([(e.case_id, e.path) for e in entries])
        task.progressed.connect(win.worklist.set_batch_progress)
        task.yielded.connect(self._on_item)
        task.succeeded.connect(self._on_succeeded)
        task.cancelled.connect(self._on_cancelled)
        task.failed.connect(self._on_failed)
        self.task = task
        win.worklist.set_batch_progress(0.0)
        win.status_text.setText(f"Predicting {len(entries)} cases\u2026")
        logger.info("predict all: %d cases", len(entries))
        return task

    def cancel(self) -> None:
        if self.running and self.task is not None:
            self.task.cancel()

    def _on_item(self, item: object) -> None:
        if not isinstance(item, BatchItem):
            return
        self._seen += 1
        win = self.win
        entry = win.worklist.entry(item.case_id)
        if item.result is not None and entry is not None:
            p = item.result.prediction
            win.worklist.update_entry(with_prediction(entry, p.stage, p.probabilities, p.flags))
        win.status_text.setText(f"Predicted {self._seen} of {self._total} cases\u2026")
        self.item_shown.emit(item.case_id)

    def _on_succeeded(self, summary: object) -> None:
        if not isinstance(summary, BatchSummary):
            return
        text = f"Predicted {summary.predicted} of {self._total} cases."
        if summary.failed:
            text += f" {summary.failed} could not be opened; open them one by one to see why."
        self._end(summary, text)

    def _on_failed(self, error: object) -> None:
        """The error itself goes to the error boundary (or, for no model, the panel)."""
        why = PredictionService.unavailable_sentence(error)
        if why is None and isinstance(error, TaskError):
            why = describe(error.exception)[0]
        self._end(None, f"Predict all stopped. {why or ''}".strip())

    def _on_cancelled(self) -> None:
        self._end(None, f"Predict all cancelled after {self._seen} of {self._total} cases.")

    def _end(self, summary: BatchSummary | None, text: str) -> None:
        self.win.worklist.set_batch_progress(None)
        self.win.status_text.setText(text)
        self.ended.emit(summary)


__all__ = ["BatchPredictionController"]
