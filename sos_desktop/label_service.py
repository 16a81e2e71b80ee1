"""`LabelService`: a `LabelSink`'s calls in one worker thread, in order, with a GUI-side cache.

Every sink call (the review store's SQLite transactions included) runs in a private pool of
one thread, so calls keep their order (a save, then its undo) and the GUI thread never waits
on the disk. The GUI learns the outcome only through queued signals, after the call returned:
"saved" is shown only for a label the store acknowledged (DB-2). What the panel shows
(`latest`, `state`) comes from a cache filled by those results. Thread affinity: GUI thread.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal

from sos_core.errors import StoreError
from sos_desktop.label_sink import CaseImage, CaseReviewState, LabelSink, ReviewDecision, SavedLabel
from sos_desktop.workers import Task, TaskError

logger = logging.getLogger(__name__)

NO_STORE_SENTENCE = (
    "No review store is open, so the label was not saved; choose a data folder in Settings or "
    "start a new store (File menu)."
)


@dataclass(frozen=True, slots=True)
class UndoResult:
    """An undone label and the label in force for its case afterwards (None: unlabelled)."""

    undone: SavedLabel
    latest: SavedLabel | None


SinkOpener = Callable[[Path], LabelSink]
_TITLES = {"save label": "Could not save the label", "undo label": "Could not undo the label"}


class LabelService(QObject):
    """Signals: `saved(SavedLabel)`, `undone(UndoResult)`, `nothing_to_undo()`,
    `looked_up(CaseReviewState)`, `failed(str, TaskError)` (a title and the failure),
    `opened(Path)` / `open_failed(Path, TaskError)` for `open_sink`, and `sink_changed()` after a
    new sink (store) was installed."""

    opened = Signal(object)
    open_failed = Signal(object, object)
    saved = Signal(object)
    undone = Signal(object)
    nothing_to_undo = Signal()
    looked_up = Signal(object)
    failed = Signal(str, object)
    sink_changed = Signal()

    def __init__(self, sink: LabelSink | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # one call at a time, in the order they were asked
        self._sink = sink
        self._latest: dict[str, SavedLabel | None] = {}
        self._states: dict[str, CaseReviewState] = {}
        self._pending = 0
        self._closed = False

    # --- state (GUI thread, cheap) ------------------------------------------------------------
    @property
    def sink(self) -> LabelSink | None:
        return self._sink

    @property
    def busy(self) -> bool:
        """A save or undo has been asked for and has not come back yet."""
        return self._pending > 0

    def latest(self, case_id: str) -> SavedLabel | None:
        """The label in force for `case_id` as last reported by the sink."""
        return self._latest.get(case_id)

    def state(self, case_id: str) -> CaseReviewState | None:
        """The case's burn-in state as last looked up, or None (not looked up yet)."""
        return self._states.get(case_id)

    def set_sink(self, sink: LabelSink | None) -> None:
        """Use `sink` from now on; the previous one is closed in the worker."""
        old, self._sink = self._sink, sink
        self._latest.clear()
        self._states.clear()
        if old is not None and old is not sink:
            self._run("close labels", lambda: old.close(), None)
        self.sink_changed.emit()

    # --- requests -----------------------------------------------------------------------------
    def save(self, decision: ReviewDecision) -> Task | None:
        """Store `decision` in the worker; `saved` follows after the sink returned."""
        sink = self._require_sink("Could not save the label")
        if sink is None:
            return None
        self._pending += 1
        return self._run("save label", lambda: sink.save(decision), self._on_saved, pending=True)

    def undo(self) -> Task | None:
        """Withdraw the last label saved in this session; `undone` or `nothing_to_undo` follows."""
        sink = self._require_sink("Could not undo the label")
        if sink is None:
            return None

        def work() -> UndoResult | None:
            undone = sink.undo_last()
            if undone is None:
                return None
            return UndoResult(undone, sink.latest(undone.decision.case_id))

        self._pending += 1
        return self._run("undo label", work, self._on_undone, pending=True)

    def lookup(self, case_id: str, image: CaseImage | None) -> Task | None:
        """Ask the sink what it knows about a case being opened; `looked_up` follows."""
        sink = self._sink
        if sink is None:
            return None
        return self._run("look up case", lambda: sink.lookup(case_id, image), self._on_looked_up)

    def open_sink(self, location: Path, opener: SinkOpener) -> Task:
        """Open a sink (the review store in `location`) in the worker and use it once it opened;
        until then the previous sink stays in use. `opened` or `open_failed` follows."""
        location = Path(location)
        return self._run(
            "open review store",
            lambda: opener(location),
            functools.partial(self._on_opened, location),
            on_failed=functools.partial(self._on_open_failed, location),
        )

    def close(self, timeout_ms: int = 10_000) -> None:
        """Close the sink after the calls already asked for; waits for them (at exit only)."""
        self._closed = True
        self.set_sink(None)
        self._pool.waitForDone(timeout_ms)

    # --- plumbing -----------------------------------------------------------------------------
    def _require_sink(self, title: str) -> LabelSink | None:
        if self._sink is None:
            error = StoreError(NO_STORE_SENTENCE)
            self.failed.emit(title, TaskError(title, error, ""))
        return self._sink

    def _run(
        self,
        name: str,
        call: Callable[[], object],
        on_result: Callable[[object], None] | None,
        *,
        on_failed: Callable[[object], None] | None = None,
        pending: bool = False,
    ) -> Task:
        def work(_progress: Callable[[float], None], _cancel: threading.Event) -> object:
            return call()

        task = Task(name, work, self)
        if pending:  # connected first, so the panel sees "not busy" when it hears the result
            task.succeeded.connect(self._on_finished_pending)
            task.failed.connect(self._on_finished_pending)
        if on_result is not None:
            task.succeeded.connect(on_result)
        title = _TITLES.get(name, "Review store problem")
        task.failed.connect(on_failed or functools.partial(self._on_failed, title))
        return task.start(self._pool)

    def _on_opened(self, location: Path, sink: object) -> None:
        if not isinstance(sink, LabelSink):
            return
        if self._closed:  # the window closed while the store was opening
            self._run("close labels", sink.close, None)
            self._pool.waitForDone(10_000)
            return
        self.set_sink(sink)
        self.opened.emit(location)

    def _on_open_failed(self, location: Path, error: object) -> None:
        if isinstance(error, TaskError):
            self.open_failed.emit(location, error)

    def _on_finished_pending(self, _outcome: object = None) -> None:
        self._pending = max(0, self._pending - 1)

    def _on_saved(self, label: object) -> None:
        if isinstance(label, SavedLabel):
            self._latest[label.decision.case_id] = label
            if label.decision.no_burned_in:
                self._confirm_burn_in(label.decision.case_id)
            self.saved.emit(label)

    def _confirm_burn_in(self, case_id: str) -> None:
        state = self._states.get(case_id)
        if state is not None:
            self._states[case_id] = CaseReviewState(
                case_id, state.latest, state.burn_in_reason, burn_in_confirmed=True
            )

    def _on_undone(self, result: object) -> None:
        if not isinstance(result, UndoResult):
            self.nothing_to_undo.emit()
            return
        self._latest[result.undone.decision.case_id] = result.latest
        self.undone.emit(result)

    def _on_looked_up(self, state: object) -> None:
        if isinstance(state, CaseReviewState):
            # results come back in the order the calls were made, so this is never staler
            # than a save's result that follows it
            self._states[state.case_id] = state
            self._latest[state.case_id] = state.latest
            self.looked_up.emit(state)

    def _on_failed(self, title: str, error: object) -> None:
        if isinstance(error, TaskError):
            self.failed.emit(title, error)


__all__ = ["NO_STORE_SENTENCE", "LabelService", "UndoResult"]
