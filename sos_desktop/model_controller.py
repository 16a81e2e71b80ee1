"""The model and its predictions as the window shows them.

`PredictionService` loads models and predicts in workers; this controller puts the results on
screen (panel, overlay, suggested box, worklist row) only while they belong to the current case,
and keeps the window in step with the model in use: the version (with its weights hash) next to
every prediction and in the status bar (RG-3), the About dialog updated in place when the model
changes (RG-9), and the current case predicted again by a new model so the panel never shows a
prediction next to another model's version. Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from sos_core.worklist import with_prediction
from sos_desktop.dialogs import AboutDialog
from sos_desktop.prediction_service import ModelInfo, PredictionResult
from sos_desktop.workers import Task

if TYPE_CHECKING:
    from sos_desktop.main_window import MainWindow

logger = logging.getLogger(__name__)


class ModelController(QObject):
    """Shows predictions, owns the About dialog and follows `PredictionService.model_changed`."""

    def __init__(self, win: MainWindow) -> None:
        super().__init__(win)
        self.win = win
        self.about_dialog: AboutDialog | None = None
        service = win.prediction
        service.started.connect(lambda _case_id: win.prediction_panel.show_busy())
        service.predicted.connect(self._on_predicted)
        service.unavailable.connect(self._on_unavailable)
        service.failed.connect(
            lambda err: win.reporter.report_task_error("Could not predict the stage", err)
        )
        service.model_changed.connect(self._on_model_changed)
        service.model_failed.connect(
            lambda err: win.reporter.report_task_error("Could not load the model", err)
        )

    def reload(self, model_dir: Path | None = None) -> Task:
        """Load the model in `model_dir` (None: the current folder) in a worker."""
        self.win.model_status.setText("Loading the model\u2026")
        return self.win.prediction.reload_model(model_dir)

    def show_about(self) -> AboutDialog:
        """Help ▸ About: non-modal, kept up to date when the model changes."""
        if self.about_dialog is None:
            self.about_dialog = AboutDialog(self.win.prediction.info, self.win)
        else:
            self.about_dialog.set_model(self.win.prediction.info)
        self.about_dialog.show()
        self.about_dialog.raise_()
        return self.about_dialog

    def close(self) -> None:
        if self.about_dialog is not None:
            self.about_dialog.close()

    def _on_predicted(self, result: object) -> None:
        win = self.win
        if not isinstance(result, PredictionResult) or win.case is None:
            return
        if result.case_id != win.case.case_id:
            return
        win.result = result
        pred, viewer = result.prediction, win.viewer
        win.prediction_panel.show_result(result)
        if pred.slice_index is not None and viewer.current_slice == win.case.start_slice:
            viewer.set_slice(pred.slice_index)
        viewer.set_model_slice(pred.slice_index)
        viewer.set_overlay(pred.cam, pred.slice_index)
        viewer.set_suggested_box(pred.box)
        win.review_panel.set_prediction(pred.stage, result.model_version)
        win.model_status.setText(f"Model {result.model_version}")
        entry = win.worklist.entry(result.case_id)
        if entry is not None:
            win.worklist.update_entry(
                with_prediction(entry, pred.stage, pred.probabilities, pred.flags)
            )

    def _on_unavailable(self, sentence: str) -> None:
        win = self.win
        if win.case is not None and win.result is None:
            win.prediction_panel.show_message(sentence)
        win.model_status.setText("No model")

    def _on_model_changed(self, info: object) -> None:
        if not isinstance(info, ModelInfo):
            return
        win = self.win
        win.model_status.setText(f"Model {info.version}")
        if self.about_dialog is not None:
            self.about_dialog.set_model(info)
        result, case = win.result, win.case
        stale = result is not None and (
            result.model_version != info.version
            or bool(info.device and result.prediction.device != info.device)
        )
        waiting = result is None and not win.prediction.busy
        if case is not None and (stale or waiting):
            logger.info("case %s predicted again by model %s", case.case_id, info.version)
            win.prediction.request(case.case_id, case.study, None)


__all__ = ["ModelController"]
