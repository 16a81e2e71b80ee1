"""Review ▸ Retrain from reviews…: queue counts, Start, progress with the current step, Cancel,
and the outcome in one sentence. Non-modal: reviewing goes on while the model trains.
Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sos_desktop.retrain_controller import report_sentence

if TYPE_CHECKING:
    from sos_core.review.records import RetrainQueue
    from sos_desktop.retrain_controller import RetrainController

logger = logging.getLogger(__name__)

INTRO = (
    "Retraining fine-tunes the model on the experts' labels the current model has not learned "
    "yet. The new model is used only if it is not worse than the current one on the locked "
    "validation set; otherwise the labels stay waiting for the next run."
)


def queue_text(queue: RetrainQueue) -> str:
    """'12 labelled case(s) waiting: stage 0: 3, stage 1: 9; by reviewer: ...'."""
    n = len(queue)
    if n == 0:
        text = "No labelled case is waiting to be trained on."
    else:
        stages = ", ".join(f"stage {s}: {c}" for s, c in sorted(queue.per_stage.items()))
        reviewers = ", ".join(f"{r}: {c}" for r, c in sorted(queue.per_reviewer.items()))
        text = f"{n} labelled case(s) waiting ({stages}); by reviewer: {reviewers}."
    if queue.held_cases:
        text += (
            f" {queue.held_cases} case(s) are held back until an expert confirms they carry no "
            "burned-in identifiers."
        )
    if queue.locked_cases:
        text += (
            f" {queue.locked_cases} labelled case(s) of the locked validation set are never "
            "trained on."
        )
    return text


class RetrainDialog(QDialog):
    """The view of one `RetrainController`; owns no state of the run."""

    def __init__(self, controller: RetrainController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Retrain from reviews")
        self.setModal(False)
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.queue_label = QLabel("Reading the retraining queue\u2026")
        self.queue_label.setWordWrap(True)
        self.step_label = QLabel("")
        self.step_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.start_button = QPushButton("Start retraining")
        self.start_button.clicked.connect(self._start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(controller.cancel)
        close_button = QPushButton("Close")
        close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)
        layout = QVBoxLayout(self)
        for w in (intro, self.queue_label, self.step_label, self.progress, self.result_label):
            layout.addWidget(w)
        layout.addLayout(buttons)
        self.setMinimumWidth(460)
        controller.queue_loaded.connect(self._on_queue)
        controller.queue_failed.connect(self.queue_label.setText)
        controller.started.connect(self._on_started)
        controller.progressed.connect(self._on_progress)
        controller.finished.connect(self._on_finished)
        self._set_running(controller.running)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)

    def _start(self) -> None:
        self.result_label.setText("")
        self.controller.start()

    def _on_queue(self, queue: object) -> None:
        if hasattr(queue, "per_stage"):
            self.queue_label.setText(queue_text(queue))  # type: ignore[arg-type]

    def _on_started(self) -> None:
        self._set_running(True)
        self.progress.setValue(0)

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(round(fraction * 100))
        self.step_label.setText(text)

    def _on_finished(self, outcome: object) -> None:
        self._set_running(self.controller.running)
        self.step_label.setText("")
        if isinstance(outcome, str):
            self.result_label.setText(outcome)
        else:
            self.result_label.setText(report_sentence(outcome))  # type: ignore[arg-type]
        self.controller.load_queue()  # a promotion marks the labels learned; a rejection not


__all__ = ["RetrainDialog", "queue_text"]
