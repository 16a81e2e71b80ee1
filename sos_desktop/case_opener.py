"""`CaseOpener`: loads a case in the background, with a quick mid-sagittal preview first.

For a series folder or DICOMDIR two tasks start together: the preview reads only the lines of
each file the mid-sagittal slice needs (`read_midsagittal`), so the slice is on screen before
the whole volume is read; the full load then replaces it with the scrollable volume. Results of
a superseded request are dropped. Thread affinity: GUI thread.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from sos_desktop.case_loader import LoadedCase, load_case
from sos_desktop.workers import Task, TaskError

if TYPE_CHECKING:
    from sos_core.imaging.study import Study

logger = logging.getLogger(__name__)


def read_preview(
    path: Path, series: str | None, _progress: Callable[[float], None], _cancel: threading.Event
) -> Study:
    """Worker thread: the mid-sagittal slice of a series without reading the whole volume."""
    from sos_core.imaging.midsagittal import read_midsagittal

    return read_midsagittal(path, series=series)


def wants_preview(path: Path) -> bool:
    """Series folders and DICOMDIRs get a preview; single files load fast enough whole."""
    return path.is_dir() or path.name.upper() == "DICOMDIR"


class CaseOpener(QObject):
    """Signals: `preview_ready(str, object)` (case id, 2-D Study), `loaded(LoadedCase)`,
    `failed(object, str, object)` (path, case id, TaskError), `progressed(float)`,
    `busy_changed(bool)`."""

    preview_ready = Signal(str, object)
    loaded = Signal(object)
    failed = Signal(object, str, object)
    progressed = Signal(float)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.case_id: str | None = None
        self._tasks: list[Task] = []
        self._full_done = False

    @property
    def busy(self) -> bool:
        return self.case_id is not None

    def load(
        self,
        path: Path,
        case_id: str,
        series: str | None = None,
        spacing: tuple[float, float] | None = None,
    ) -> None:
        """Start loading `path` as `case_id`; any earlier request is cancelled.

        spacing: (row mm, col mm) for a raster when the caller knows it (a dataset manifest).
        """
        self.cancel(announce=False)
        self.case_id, self._full_done = case_id, False
        run = functools.partial(load_case, path, case_id, series, spacing=spacing)
        full = Task(f"load {case_id}", run, self)
        full.progressed.connect(self.progressed)
        full.succeeded.connect(self._on_loaded)
        full.failed.connect(functools.partial(self._on_failed, path, case_id))
        self._tasks = [full]
        self.busy_changed.emit(True)
        if not wants_preview(path):
            full.start()
            return
        preview = Task(f"preview {case_id}", functools.partial(read_preview, path, series), self)
        preview.succeeded.connect(functools.partial(self._on_preview, case_id))
        preview.failed.connect(self._on_preview_failed)
        # the full load follows the preview whatever its outcome, unless the request moved on
        preview.finished.connect(functools.partial(self._start_if_current, full, case_id))
        self._tasks.append(preview)
        preview.start()

    def _start_if_current(self, task: Task, case_id: str) -> None:
        if self.case_id == case_id and not task.done:
            task.start()

    def cancel(self, *, announce: bool = True) -> None:
        """Stop the current request; its results will be dropped."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        was_busy, self.case_id = self.case_id is not None, None
        if was_busy and announce:
            self.busy_changed.emit(False)

    def _on_preview(self, case_id: str, study: object) -> None:
        if case_id == self.case_id and not self._full_done:
            self.preview_ready.emit(case_id, study)

    def _on_preview_failed(self, error: object) -> None:
        # The full load reports the same problem in words; the preview is only a shortcut.
        if isinstance(error, TaskError):
            logger.debug("preview failed: %s", type(error.exception).__name__)

    def _on_loaded(self, case: object) -> None:
        if not isinstance(case, LoadedCase) or case.case_id != self.case_id:
            return
        self._full_done = True
        self.case_id = None
        self.busy_changed.emit(False)
        self.loaded.emit(case)

    def _on_failed(self, path: Path, case_id: str, error: object) -> None:
        if case_id != self.case_id:
            return
        self.case_id = None
        self.busy_changed.emit(False)
        self.failed.emit(path, case_id, error)
