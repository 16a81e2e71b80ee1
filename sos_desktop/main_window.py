"""`MainWindow`: worklist | viewer | prediction + review, wired to workers and the label sink.

Opening, predicting and exporting run in `workers`; results come back as queued signals and are
shown only if they still belong to the current case. Errors go through the error boundary and
the window stays usable. The window title and logs name cases by pseudonymous id (DI-5).
Thread affinity: GUI thread.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
)

from sos_core.errors import SeriesNotChosen
from sos_core.imaging.study import SeriesInfo, Study
from sos_core.worklist import case_id_for, discover_cases, with_prediction
from sos_desktop import actions
from sos_desktop.case_loader import LoadedCase, image_spacing, slice_getter
from sos_desktop.case_opener import CaseOpener
from sos_desktop.dialogs import AboutDialog, ShortcutsDialog, ask_series
from sos_desktop.error_boundary import ErrorReporter, error_boundary
from sos_desktop.exporting import ExportController
from sos_desktop.label_sink import InMemoryLabelSink, LabelSink
from sos_desktop.prediction_panel import PredictionPanel
from sos_desktop.prediction_service import PredictionResult, PredictionService
from sos_desktop.review_controller import ReviewController
from sos_desktop.review_panel import ReviewPanel
from sos_desktop.settings import AppSettings
from sos_desktop.settings_dialog import SettingsDialog
from sos_desktop.viewer import ImageViewer
from sos_desktop.workers import TaskError
from sos_desktop.worklist import WorklistPanel

logger = logging.getLogger(__name__)

SeriesChooser = Callable[[list[SeriesInfo]], str | None]


class MainWindow(QMainWindow):
    """Signals: `case_shown(str)` once a case is on screen, `load_failed(str)` with its id."""

    case_shown = Signal(str)
    load_failed = Signal(str)

    def __init__(
        self,
        settings: AppSettings,
        *,
        sink: LabelSink | None = None,
        prediction: PredictionService | None = None,
        reporter: ErrorReporter | None = None,
        choose_series: SeriesChooser | None = None,
        ask_reviewer: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.sink = sink if sink is not None else InMemoryLabelSink()
        self.reporter = reporter or ErrorReporter(self)
        self.prediction = prediction or PredictionService(device=settings.device, parent=self)
        self.choose_series = choose_series or functools.partial(ask_series, self)
        self.review = ReviewController(self, ask_reviewer)
        self.case: LoadedCase | None = None
        self.result: PredictionResult | None = None
        self.opener = CaseOpener(self)
        self._build()
        self.exports = ExportController(self)
        self.actions_by_key = actions.build_menus(self)
        self._apply_overlay_defaults()
        self._restore_state()
        self._refresh_recent()
        self.setAcceptDrops(True)
        self._set_title()

    # --- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.viewer = ImageViewer()
        self.viewer.open_file_requested.connect(self.ask_open_file)
        self.viewer.open_folder_requested.connect(self.ask_open_folder)
        self.worklist = WorklistPanel()
        self.worklist.case_activated.connect(self._on_case_activated)
        self.prediction_panel = PredictionPanel()
        self.review_panel = ReviewPanel(
            self.sink,
            self.review.reviewer,
            lambda: (self.viewer.crop_box(), self.viewer.current_slice),
        )
        self.review_panel.age_hint_sex = self.review.age_hint_sex
        self.review_panel.saved.connect(self.review.on_label_saved)
        self.review_panel.undone.connect(self.review.on_label_undone)
        self.side_splitter = QSplitter(Qt.Orientation.Vertical)
        self.side_splitter.addWidget(self.prediction_panel)
        self.side_splitter.addWidget(self.review_panel)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.worklist)
        self.splitter.addWidget(self.viewer)
        self.splitter.addWidget(self.side_splitter)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([400, 740, 380])
        self.setCentralWidget(self.splitter)
        self.worklist.setVisible(False)
        self._build_status_bar()
        self._connect_services()
        screen = self.screen().availableGeometry()
        self.resize(min(1500, int(screen.width() * 0.92)), min(920, int(screen.height() * 0.9)))

    def _build_status_bar(self) -> None:
        self.status_text = QLabel("Ready")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(180)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_loading)
        self.model_status = QLabel("")
        bar = self.statusBar()
        bar.addWidget(self.status_text, 1)
        bar.addPermanentWidget(self.model_status)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self._set_busy(False)

    def _connect_services(self) -> None:
        self.opener.progressed.connect(lambda f: self.progress.setValue(round(f * 100)))
        self.opener.busy_changed.connect(self._set_busy)
        self.opener.preview_ready.connect(self._on_preview_ready)
        self.opener.loaded.connect(self._on_case_loaded)
        self.opener.failed.connect(self._on_load_failed)
        self.prediction.started.connect(self._on_prediction_started)
        self.prediction.predicted.connect(self._on_predicted)
        self.prediction.unavailable.connect(self._on_prediction_unavailable)
        self.prediction.failed.connect(
            lambda err: self.reporter.report_task_error("Could not predict the stage", err)
        )

    def _apply_overlay_defaults(self) -> None:
        s = self.settings
        self.viewer.set_overlay_visible(s.overlay_visible)
        self.viewer.set_overlay_opacity(s.overlay_opacity)
        self.viewer.set_overlay_colormap(s.overlay_colormap)
        self.prediction.set_device(s.device)

    def _restore_state(self) -> None:
        s = self.settings
        if (geometry := s.load_bytes("geometry")) is not None:
            self.restoreGeometry(geometry)
        if (state := s.load_bytes("state")) is not None:
            self.restoreState(state)
        if (main := s.load_bytes("splitter")) is not None:
            self.splitter.restoreState(main)
        if (side := s.load_bytes("side_splitter")) is not None:
            self.side_splitter.restoreState(side)

    def save_state(self) -> None:
        s = self.settings
        s.save_bytes("geometry", self.saveGeometry())
        s.save_bytes("state", self.saveState())
        s.save_bytes("splitter", self.splitter.saveState())
        s.save_bytes("side_splitter", self.side_splitter.saveState())
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.save_state()
        self.cancel_loading()
        self.prediction.cancel()
        self.reporter.close_dialogs()
        super().closeEvent(event)

    def _set_title(self) -> None:
        case = f" \u2014 {self.case.case_id}" if self.case else ""
        self.setWindowTitle(f"SOS Review{case}")

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setValue(0)

    # --- opening ------------------------------------------------------------------------------
    def ask_open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a study", self.settings.last_folder,
            "Images (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff DICOMDIR);;All files (*)",
        )  # fmt: skip
        if path:
            self.open_path(Path(path))

    def ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder", self.settings.last_folder)
        if path:
            self.open_path(Path(path))

    def open_path(self, path: Path, series: str | None = None) -> None:
        """Open a file, a series folder / DICOMDIR, or a folder of cases (as a worklist)."""
        with error_boundary("Could not open study", self.reporter):
            path = Path(path)
            self.settings.add_recent(path)
            self.settings.last_folder = str(path.parent if path.is_file() else path)
            self._refresh_recent()
            cases = discover_cases(path) if path.is_dir() else None
            if cases:
                self.worklist.set_entries(cases)
                self.set_worklist_visible(True)
                first = self.worklist.next_case_id(1)
                if first is not None:
                    self.open_case(first)
                return
            # the worklist stays until the new study is on screen: a failed open keeps it
            self._load(path, case_id_for(path), series)

    def open_case(self, case_id: str) -> None:
        """Open a worklist case by id."""
        entry = self.worklist.entry(case_id)
        if entry is not None:
            self.worklist.set_current(case_id)
            self._load(entry.path, case_id, None)

    def _load(self, path: Path, case_id: str, series: str | None) -> None:
        self.prediction.cancel()
        self.status_text.setText(f"Opening {path.name}\u2026")
        self.opener.load(path, case_id, series)

    def cancel_loading(self) -> None:
        if self.opener.busy:
            self.opener.cancel()
            self.status_text.setText("Cancelled")

    def _on_preview_ready(self, case_id: str, study: object) -> None:
        with error_boundary("Could not show study", self.reporter):
            if not isinstance(study, Study):
                return
            self.case, self.result = None, None
            self.viewer.show_image(
                study.pixels, image_spacing(study), study.window, study.modality.upper() == "CT"
            )
            self.prediction_panel.show_message("Reading the whole volume\u2026")
            self.review_panel.set_case(None)
            self.status_text.setText("Mid-sagittal preview; reading the whole volume\u2026")

    def _on_case_loaded(self, case: object) -> None:
        if isinstance(case, LoadedCase):
            with error_boundary("Could not show study", self.reporter):
                self._show_case(case)

    def _show_case(self, case: LoadedCase) -> None:
        self.case, self.result = case, None
        study = case.study
        self.viewer.set_overlay(None)
        self.viewer.boxes.set_suggested(None, False)
        if case.slice_count is not None and case.start_slice is not None:
            axis = "Sagittal slice" if study.kind == "volume" else "Frame"
            self.viewer.show_volume(
                case.slice_count, case.start_slice, slice_getter(case), study.window, case.hu, axis
            )
        else:
            self.viewer.show_image(study.pixels, image_spacing(study), study.window, case.hu)
        self.viewer.reset_crop_box()
        # The rest waits for the next event-loop turn so the image paints first and the GUI
        # thread never holds on to one long block (the heartbeat test's < 100 ms).
        QTimer.singleShot(0, functools.partial(self._finish_show_case, case))

    def _finish_show_case(self, case: LoadedCase) -> None:
        if self.case is not case:
            return
        study = case.study
        self.review_panel.set_case(case.case_id)
        entry = self.worklist.entry(case.case_id)
        if entry is None and self.worklist.entries():  # a single study replaced the worklist
            self.worklist.set_entries([])
            self.set_worklist_visible(False)
        if entry is not None and not entry.modality:
            self.worklist.update_entry(dataclasses.replace(entry, modality=study.modality))
        self.worklist.set_current(case.case_id)
        warnings = " ".join(study.warnings)
        self.status_text.setText(f"{study.description or study.modality} {warnings}".strip())
        self._set_title()
        logger.info("case %s shown (%.2f s to load)", case.case_id, case.seconds)
        self.case_shown.emit(case.case_id)
        self.prediction.request(case.case_id, study, None)

    def _on_load_failed(self, path: object, case_id: str, error: object) -> None:
        if not isinstance(error, TaskError) or not isinstance(path, Path):
            return
        exc = error.exception
        if isinstance(exc, SeriesNotChosen) and exc.series:
            key = self.choose_series(list(exc.series))
            if key:
                self._load(path, case_id, key)
                return
        self.reporter.report_task_error("Could not open study", error)
        if self.case is None:
            self.viewer.clear("That study could not be opened. Open another file or folder.")
        self.status_text.setText("Could not open the study.")
        self.load_failed.emit(case_id)

    # --- prediction ---------------------------------------------------------------------------
    def _on_prediction_started(self, case_id: str) -> None:
        self.prediction_panel.show_busy()

    def _on_predicted(self, result: object) -> None:
        if not isinstance(result, PredictionResult) or self.case is None:
            return
        if result.case_id != self.case.case_id:
            return
        self.result = result
        pred = result.prediction
        self.prediction_panel.show_result(result)
        if pred.slice_index is not None and self.viewer.current_slice == self.case.start_slice:
            self.viewer.set_slice(pred.slice_index)
        self.viewer.set_model_slice(pred.slice_index)
        self.viewer.set_overlay(pred.cam, pred.slice_index)
        self.viewer.set_suggested_box(pred.box)
        self.review_panel.set_prediction(pred.stage, result.model_version)
        self.model_status.setText(f"Model {result.model_version}")
        entry = self.worklist.entry(result.case_id)
        if entry is not None:
            self.worklist.update_entry(
                with_prediction(entry, pred.stage, pred.probabilities, pred.flags)
            )

    def _on_prediction_unavailable(self, sentence: str) -> None:
        self.prediction_panel.show_message(sentence)
        self.model_status.setText("No model")

    # --- review -------------------------------------------------------------------------------
    def confirm_or_save(self) -> None:
        """Enter: save the chosen stage (a confirmation when it is the predicted one)."""
        self.review_panel.save()

    def step_case(self, step: int) -> None:
        nxt = self.worklist.next_case_id(step)
        if nxt is not None:
            self.open_case(nxt)

    def step_slice(self, step: int) -> None:
        if self.viewer.current_slice is not None:
            self.viewer.set_slice(self.viewer.current_slice + step)

    def _on_case_activated(self, case_id: str) -> None:
        self.open_case(case_id)

    def set_worklist_visible(self, on: bool) -> None:
        self.worklist.setVisible(bool(on))
        if "worklist" in getattr(self, "actions_by_key", {}):
            self.actions_by_key["worklist"].setChecked(bool(on))

    # --- menus: export, settings, help, recent ------------------------------------------------
    def ask_export_png(self) -> None:
        self.exports.ask("png")

    def ask_export_pdf(self) -> None:
        self.exports.ask("pdf")

    def show_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self._apply_overlay_defaults()
            self.review_panel.refresh()

    def show_shortcuts(self) -> None:
        ShortcutsDialog(actions.shortcut_table(self.actions_by_key), self).exec()

    def show_about(self) -> None:
        AboutDialog(self.prediction.card, self).exec()

    def _refresh_recent(self) -> None:
        menu = getattr(self, "recent_menu", None)
        if menu is None:
            return
        menu.clear()
        for p in self.settings.recent_paths():
            menu.addAction(p.name or str(p), functools.partial(self.open_path, p))
        menu.setEnabled(not menu.isEmpty())

    # --- drag and drop ------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])
