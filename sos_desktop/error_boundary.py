"""The GUI's error boundary: show the typed error's sentence, keep the traceback, stay alive.

`with error_boundary("Could not open study"):` around a GUI action shows a non-blocking dialog
with the error's one sentence and its traceback under "details", logs it, and lets the app go
on (Slicer `util.tryWithErrorDisplay`). Worker failures arrive as `TaskError`s and go through the
same `ErrorReporter.report_task_error` (napari `_NotifyingMixin`).

Logs name the error type and the title only: messages may name a file or folder, and folder
names often hold patient names (DI-5); tracebacks go to DEBUG (DI-7).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from sos_core.errors import SosError
from sos_desktop.workers import TaskError

logger = logging.getLogger(__name__)

INTERNAL_SENTENCE = (
    "An unexpected internal error occurred; your work so far is kept. The details below help "
    "the developers fix it."
)


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """What the user is shown: a title, one sentence, and the traceback as details."""

    title: str
    sentence: str
    details: str
    error_type: str
    expected: bool  # a typed SosError (bad input) rather than an internal fault
    actions: tuple[str, ...] = ()  # extra buttons offered with the sentence


ReportAction = tuple[str, Callable[[], None]]


def describe(exc: BaseException) -> tuple[str, bool]:
    """The sentence to show for `exc` and whether it is one of our typed errors."""
    if isinstance(exc, SosError) and str(exc).strip():
        return str(exc).strip(), True  # never re-case: it may start with a file name
    return INTERNAL_SENTENCE, False


class ErrorReporter(QObject):
    """Turns exceptions into `ErrorReport`s, logs them and shows them (GUI thread only).

    show_dialogs: False in tests that only watch `error_reported`; True shows a modeless
    `QMessageBox` per report, kept in `dialogs` until closed.
    """

    error_reported = Signal(object)

    def __init__(self, parent_widget: QWidget | None = None, *, show_dialogs: bool = True) -> None:
        super().__init__(parent_widget)
        self._parent_widget = parent_widget
        self.show_dialogs = show_dialogs
        self.dialogs: list[QMessageBox] = []
        self.reports: list[ErrorReport] = []

    def report(
        self,
        title: str,
        exc: BaseException,
        traceback_text: str | None = None,
        *,
        actions: Sequence[ReportAction] = (),
    ) -> ErrorReport:
        """Log, record, announce and (optionally) show one failure; returns the report.

        `actions` are (button text, callback) pairs offered in the dialog, e.g. "Start a new
        store elsewhere…"; a callback runs after the dialog closed.
        """
        sentence, expected = describe(exc)
        details = (
            traceback_text
            or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            or f"{type(exc).__name__}: {exc}"
        )
        names = tuple(text for text, _ in actions)
        rep = ErrorReport(title, sentence, details, type(exc).__name__, expected, names)
        if expected:
            logger.warning("%s: %s", title, rep.error_type)
        else:
            logger.error("%s: internal %s", title, rep.error_type)
        logger.debug("%s traceback:\n%s", title, details)
        self.reports.append(rep)
        if self.show_dialogs:
            self._show(rep, actions)
        self.error_reported.emit(rep)
        return rep

    def report_task_error(
        self, title: str, error: TaskError, *, actions: Sequence[ReportAction] = ()
    ) -> ErrorReport:
        """Relay a worker's failure (its traceback was captured in the worker thread)."""
        return self.report(title, error.exception, error.traceback_text, actions=actions)

    @property
    def last_dialog(self) -> QMessageBox | None:
        return self.dialogs[-1] if self.dialogs else None

    def close_dialogs(self) -> None:
        for box in list(self.dialogs):
            box.close()

    def _show(self, rep: ErrorReport, actions: Sequence[ReportAction] = ()) -> None:
        box = QMessageBox(self._parent_widget)
        box.setIcon(QMessageBox.Icon.Warning if rep.expected else QMessageBox.Icon.Critical)
        box.setWindowTitle(rep.title)
        box.setText(f"<b>{rep.title}</b>")
        box.setInformativeText(rep.sentence)
        box.setDetailedText(rep.details)
        box.setStandardButtons(QMessageBox.StandardButton.Close)
        for text, callback in actions:
            button = box.addButton(text, QMessageBox.ButtonRole.ActionRole)
            # after the click has closed the box, so a file dialog opened by it is on top
            button.clicked.connect(lambda _c=False, cb=callback: QTimer.singleShot(0, cb))
        box.setModal(False)  # never block the event loop or the rest of the app
        # QMessageBox sizes itself to its title; give the sentence room for a readable line
        box.setStyleSheet("QLabel#qt_msgbox_informativelabel { min-width: 380px; }")
        box.finished.connect(lambda _result, b=box: self._forget(b))
        self.dialogs.append(box)
        box.show()

    def _forget(self, box: QMessageBox) -> None:
        if box in self.dialogs:
            self.dialogs.remove(box)
        box.deleteLater()


_default: ErrorReporter | None = None


def install_reporter(reporter: ErrorReporter) -> None:
    """Make `reporter` the one `error_boundary` uses when none is passed."""
    global _default
    _default = reporter


def default_reporter() -> ErrorReporter:
    """The installed reporter, created on first use."""
    global _default
    if _default is None:
        _default = ErrorReporter()
    return _default


@contextmanager
def error_boundary(title: str, reporter: ErrorReporter | None = None) -> Iterator[None]:
    """Run a GUI action; any `Exception` is shown under `title`, logged, and not re-raised.

    KeyboardInterrupt and SystemExit pass through.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the GUI boundary: report and keep the app alive
        (reporter or default_reporter()).report(title, exc)


def install_excepthook(reporter: ErrorReporter) -> None:
    """Route exceptions escaping Qt slots to `reporter` instead of killing the app."""
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not isinstance(exc, Exception):
            previous(exc_type, exc, tb)
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        reporter.report("Unexpected error", exc, text)

    sys.excepthook = hook


__all__ = [
    "ErrorReport",
    "ErrorReporter",
    "ReportAction",
    "default_reporter",
    "describe",
    "error_boundary",
    "install_excepthook",
    "install_reporter",
]
