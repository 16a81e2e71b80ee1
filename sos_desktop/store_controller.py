"""Which review store the window writes to: open it in a worker, and handle one that is not ours.

The data folder setting is the store location. Opening happens in the label worker; the store's
typed refusal (`NotAStore`, `StoreTooNew`, `CorruptStore`, `StoreOnNetworkDrive`, ...) is shown
as its one sentence, with a "Start a new store elsewhere…" button; the refused file is never
touched (DB-7), and the app stays usable for viewing and predicting meanwhile.
Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from sos_desktop.label_service import SinkOpener
from sos_desktop.store_sink import StoreLabelSink
from sos_desktop.workers import Task, TaskError

if TYPE_CHECKING:
    from sos_desktop.main_window import MainWindow

logger = logging.getLogger(__name__)

NEW_STORE_TEXT = "Start a new store elsewhere\u2026"
OPEN_FAILED_TITLE = "Could not open the review store"


class StoreController(QObject):
    """Signals: `opened(Path)` once a store is in use, `open_failed(Path)` after a refusal."""

    opened = Signal(object)
    open_failed = Signal(object)

    def __init__(self, win: MainWindow, opener: SinkOpener = StoreLabelSink.open) -> None:
        super().__init__(win)
        self.win = win
        self.opener = opener
        self.location: Path | None = None  # the store in use
        self._new_location: Path | None = None  # asked for through "Start a new store…"
        win.labels.opened.connect(self._on_opened)
        win.labels.open_failed.connect(self._on_open_failed)

    def open(self, location: Path) -> Task:
        """Open (or create) the store in `location` in the worker."""
        self.win.status_text.setText("Opening the review store\u2026")
        return self.win.labels.open_sink(Path(location), self.opener)

    def ask_new_store(self) -> None:
        """File ▸ Start a new store elsewhere…: choose a folder, then `start_new_store`."""
        start = str(self.location.parent if self.location else Path.home())
        folder = QFileDialog.getExistingDirectory(self.win, "Start a new review store in", start)
        if folder:
            self.start_new_store(Path(folder))

    def start_new_store(self, folder: Path) -> Task:
        """Create (or open) the store in `folder`; it becomes the data folder once it opened."""
        self._new_location = Path(folder)
        return self.open(folder)

    def _on_opened(self, location: object) -> None:
        if not isinstance(location, Path):
            return
        self.location = location
        if self._new_location == location:
            self.win.settings.data_folder = location
            self._new_location = None
        self.win.status_text.setText(f"Labels are saved in the review store in {location.name}.")
        logger.info("review store in use")
        self.opened.emit(location)

    def _on_open_failed(self, location: object, error: object) -> None:
        if not isinstance(location, Path) or not isinstance(error, TaskError):
            return
        self._new_location = None
        self.win.reporter.report_task_error(
            OPEN_FAILED_TITLE, error, actions=[(NEW_STORE_TEXT, self.ask_new_store)]
        )
        if self.location is None:
            self.win.status_text.setText(
                "Labels cannot be saved until a review store is open (File \u25b8 "
                + NEW_STORE_TEXT.rstrip("\u2026")
                + ")."
            )
        self.open_failed.emit(location)


__all__ = ["NEW_STORE_TEXT", "OPEN_FAILED_TITLE", "StoreController"]
