"""The export actions: capture what is on screen, write PNG / PDF in a worker, report back."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from sos_desktop.export import ExportRequest, write_pdf, write_png
from sos_desktop.prediction_panel import PredictionPanel, device_words
from sos_desktop.workers import Task

if TYPE_CHECKING:
    from sos_desktop.main_window import MainWindow

logger = logging.getLogger(__name__)


class ExportController(QObject):
    """Signals: `exported(Path)` when a file is written (failures go to the error boundary)."""

    exported = Signal(object)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.win = window

    def ask(self, kind: str) -> None:
        """File ▸ Export: choose a file name, then export (kind "png" or "pdf")."""
        if self.request() is None:
            self.win.status_text.setText("Open a study before exporting.")
            return
        case = self.win.case
        name = f"{case.case_id if case else 'case'}.{kind}"
        start = str(self.win.settings.data_folder / name)
        filt = "PNG image (*.png)" if kind == "png" else "PDF report (*.pdf)"
        path, _ = QFileDialog.getSaveFileName(self.win, f"Export {kind.upper()}", start, filt)
        if path:
            self.export(kind, Path(path))

    def export(self, kind: str, path: Path) -> Task | None:
        """Export the current case to `path` in the background; returns the task (or None)."""
        req = self.request()
        if req is None:
            return None
        writer: Callable[[ExportRequest, Path], Path] = write_png if kind == "png" else write_pdf
        path.parent.mkdir(parents=True, exist_ok=True)

        def run(_progress: Callable[[float], None], _cancel: threading.Event) -> Path:
            return writer(req, path)

        task = Task(f"export {kind}", run, self)
        task.succeeded.connect(self._on_exported)
        task.failed.connect(
            functools.partial(self.win.reporter.report_task_error, "Could not export")
        )
        self.win.status_text.setText(f"Exporting {path.name}\u2026")
        return task.start()

    def _on_exported(self, path: object) -> None:
        if isinstance(path, Path):
            self.win.status_text.setText(f"Exported {path.name}.")
            self.exported.emit(path)

    def request(self) -> ExportRequest | None:
        """Copy what is on screen into an immutable request (GUI thread, cheap)."""
        win, v = self.win, self.win.viewer
        if win.case is None or v.pixels is None:
            return None
        cam = v.cam if v.overlay_shown() else None
        return ExportRequest(
            pixels=np.array(v.pixels, copy=True),
            window=v.window,
            spacing=v.spacing,
            cam=None if cam is None else np.array(cam, copy=True),
            lut=np.array(v.overlay_lut_array, copy=True),
            opacity=v.opacity.value() / 100.0,
            suggested_box=v.suggested_box_shown,
            crop_box=v.crop_box(),
            title=f"SOS Review \u2014 {win.case.case_id}",
            lines=tuple(self.report_lines()),
            model_version=self._model_on_screen(),
        )

    def _model_on_screen(self) -> str | None:
        """The version of the model whose prediction is on screen (RG-3), or None."""
        result, case = self.win.result, self.win.case
        if result is None or case is None or result.case_id != case.case_id:
            return None
        return result.model_version

    def report_lines(self) -> list[str]:
        """Stage, review, model version and device lines for the footer / report."""
        win = self.win
        lines = []
        case = win.case
        if case is not None:
            where = (
                f", sagittal slice {win.viewer.current_slice + 1}"
                if win.viewer.current_slice is not None
                else ""
            )
            lines.append(f"Study: {case.study.modality}{where}")
        result = win.result
        if result is not None:
            p = result.prediction
            lines.append(
                f"Predicted stage {p.stage} ({p.stage_name}), p = {max(p.probabilities):.2f}"
            )
            for sentence in PredictionPanel.flag_sentences(result):
                lines.append(f"Flag: {sentence}")
            lines.append(f"Model version {result.model_version}, run on {device_words(p.device)}")
        else:
            lines.append("Model version: none (no prediction)")
        label = win.labels.latest(case.case_id) if case is not None else None
        if label is not None:
            d = label.decision
            name = win.review_panel.scheme.stage(d.stage).name
            lines.append(f"Reviewed stage {d.stage} ({name}), {d.decision} by {d.reviewer}")
        else:
            lines.append(f"Not yet reviewed; reviewer: {win.settings.reviewer or 'not set'}")
        lines.append(f"Exported {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        return lines
