"""`MainWindow`: worklist | viewer | prediction + review, wired to workers and the review store.

Opening, predicting, exporting and every review-store call run in `workers`; results come back
as queued signals and are shown only if they still belong to the current case. Labels go to the
review store in the data folder (`StoreLabelSink` through `LabelService`) unless a sink is
passed in. Errors go through the error boundary and the window stays usable. The window title
and logs name cases by pseudonymous id (DI-5). Thread affinity: GUI thread.
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
    QFrame,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
)

from sos_core.errors import SeriesNotChosen
from sos_core.imaging.study import SeriesInfo, Study
from sos_core.worklist import case_id_for, discover_cases
from sos_desktop import actions
from sos_desktop.batch_prediction import BatchPredictionController
from sos_desktop.case_loader import LoadedCase, image_spacing, slice_getter
from sos_desktop.case_opener import CaseOpener
from sos_desktop.dialogs import ShortcutsDialog, ask_series
from sos_desktop.error_boundary import ErrorReporter, error_boundary
from sos_desktop.exporting import ExportController
from sos_desktop.label_service import LabelService
from sos_desktop.label_sink import LabelSink
from sos_desktop.model_controller import ModelController
from sos_desktop.prediction_panel import PredictionPanel
from sos_desktop.prediction_service import PredictionResult, PredictionService
from sos_desktop.retrain_controller import RetrainController, startup_model_dir
from sos_desktop.review_controller import ReviewController
from sos_desktop.review_panel import ReviewPanel
from sos_desktop.settings import AppSettings, restore_window_state, save_window_state
from sos_desktop.settings_dialog import SettingsDialog
from sos_desktop.store_controller import StoreController
from sos_desktop.viewer import ImageViewer
from sos_desktop.workers import Task, TaskError
from sos_desktop.worklist import WorklistPanel

logger = logging.getLogger(__name__)

SeriesChooser = Callable[[list[SeriesInfo]], str | None]


class MainWindow(QMainWindow):
    """Signals: `case_shown(str)` once a case is on screen, `load_failed(str)` with its id.

    sink: where labels go; None opens the review store in the data folder (in a worker).
    """

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
        self.labels = LabelService(sink, self)
        self.reporter = reporter or ErrorReporter(self)
        # The registry's active model of the store (else the embedded one), chosen at start;
        # RetrainController follows the registry from then on (RG-9).
        start_model = None if prediction else startup_model_dir(settings.data_folder)
        self.prediction = prediction or PredictionService(
            model_dir=start_model, device=settings.device, parent=self
        )
        self.choose_series = choose_series or functools.partial(ask_series, self)
        self.review = ReviewController(self, ask_reviewer)
        self.case: LoadedCase | None = None
        self.result: PredictionResult | None = None
        self.opener = CaseOpener(self)
        self._build()
        self.models = ModelController(self)
        self.store = StoreController(self)
        self.batch = BatchPredictionController(self)
        self.exports = ExportController(self)
        self.retrain = RetrainController(self, start_model, follow_store=prediction is None)
        self.actions_by_key = actions.build_menus(self)
        self._apply_overlay_defaults()
        restore_window_state(settings, self, self._splitters())
        self._refresh_recent()
        self.setAcceptDrops(True)
        self._set_title()
        if sink is None:
            self.store.open(settings.data_folder)

    @property
    def sink(self) -> LabelSink | None:
        """Where labels go now (None while the review store is not open)."""
        return self.labels.sink

    # --- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.viewer = ImageViewer()
        self.viewer.open_file_requested.connect(self.ask_open_file)
        self.viewer.open_folder_requested.connect(self.ask_open_folder)
        self.worklist = WorklistPanel()
        self.worklist.case_activated.connect(self._on_case_activated)
        self.prediction_panel = PredictionPanel()
        self.review_panel = ReviewPanel(self.labels, self.review.reviewer, self.review.inputs)
        self.review_panel.age_hint_sex = self.review.age_hint_sex
        self.review_panel.saved.connect(self.review.on_label_saved)
        # Save is greyed out, with the reason, until there is a box to save with the label.
        self.viewer.crop_box_changed.connect(lambda _box: self.review_panel.refresh())
        self.review.connect_services()
        self.side_splitter = QSplitter(Qt.Orientation.Vertical)
        # Scrolls rather than clips when several flags' sentences outgrow its share.
        prediction_scroll = QScrollArea()
        prediction_scroll.setWidget(self.prediction_panel)
        prediction_scroll.setWidgetResizable(True)
        prediction_scroll.setFrameShape(QFrame.Shape.NoFrame)
        prediction_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.side_splitter.addWidget(prediction_scroll)
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

    def _apply_overlay_defaults(self) -> None:
        s = self.settings
        self.viewer.set_overlay_visible(s.overlay_visible)
        self.viewer.set_overlay_opacity(s.overlay_opacity)
        self.viewer.set_overlay_colormap(s.overlay_colormap)
        self.prediction.set_device(s.device)

    def _splitters(self) -> dict[str, QSplitter]:
        return {"splitter": self.splitter, "side_splitter": self.side_splitter}

    def save_state(self) -> None:
        save_window_state(self.settings, self, self._splitters())

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.save_state()
        self.cancel_loading()
        self.prediction.cancel()
        self.batch.cancel()
        self.reporter.close_dialogs()
        self.models.close()
        self.retrain.close()
        self.labels.close()  # waits for labels on their way to the store
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
            self._load(entry.path, case_id, None, entry.pixel_spacing)

    def _load(
        self,
        path: Path,
        case_id: str,
        series: str | None,
        spacing: tuple[float, float] | None = None,
    ) -> None:
        self.prediction.cancel()
        self.status_text.setText(f"Opening {path.name}\u2026")
        self.opener.load(path, case_id, series, spacing)

    def cancel_loading(self) -> None:
        self.batch.cancel()
        if self.opener.busy:
            self.opener.cancel()
            self.status_text.setText("Cancelled")

    def _on_preview_ready(self, case_id: str, study: object) -> None:
        with error_boundary("Could not show study", self.reporter):
            if not isinstance(study, Study):
                return
            self.case, self.result = None, None
            self.viewer.clear_annotations()  # the previous case's map and boxes
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
        self.viewer.clear_annotations()  # no box until the prediction suggests one
        if case.slice_count is not None and case.start_slice is not None:
            axis = "Sagittal slice" if study.kind == "volume" else "Frame"
            self.viewer.show_volume(
                case.slice_count, case.start_slice, slice_getter(case), study.window, case.hu, axis
            )
        else:
            self.viewer.show_image(study.pixels, image_spacing(study), study.window, case.hu)
        # The rest waits for the next event-loop turn so the image paints first and the GUI
        # thread never holds on to one long block (`benchmarks/app_startup.py` measures its stalls).
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
        self.review.look_up_current()
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

    # --- model ----------------------------------------------------------------------------------
    def reload_model(self, model_dir: Path | None = None) -> Task:
        """Load the model in `model_dir` (None: the current folder) in a worker and make it the
        active one; the About dialog, the status bar and the current case follow it (the
        registry's promotion calls this)."""
        return self.models.reload(model_dir)

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
        folder = self.settings.data_folder
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(folder)

    def apply_settings(self, previous_data_folder: Path | None = None) -> None:
        """Follow edited settings: device, overlay defaults, and the store in the data folder."""
        self._apply_overlay_defaults()
        self.review_panel.refresh()
        if previous_data_folder is not None and self.settings.data_folder != previous_data_folder:
            self.store.open(self.settings.data_folder)

    def show_shortcuts(self) -> None:
        ShortcutsDialog(actions.shortcut_table(self.actions_by_key), self).exec()

    def show_about(self) -> None:
        """Help ▸ About: non-modal, and kept up to date when the model changes (RG-9)."""
        self.models.show_about()

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
