"""Background work for the GUI: QThreadPool runnables that report only through queued signals.

A task function is plain Python: `fn(progress, cancel) -> result`, where `progress(fraction)`
may be called from the worker thread and `cancel` is a `threading.Event` the function polls.
A streaming task (`Task(..., stream=True)`) gets a third argument `emit(item)` for partial
results (one per case of a batch), delivered in order as `yielded(item)` before the end.
The runnable never touches a widget; its result, error, progress and cancellation reach the GUI
thread as signals of a `Task` that lives there (napari `_qt/qt_viewer.py` `ensure_main_thread`).

Workers emit through one relay that lives on the GUI thread as long as the application, and
signals carry the task's id; a worker holds no reference to any per-task QObject. A relay per
task used to be deleted by whichever thread dropped its last reference, often the worker's
(`test_workers.py::test_no_qobject_of_the_task_machinery_dies_on_a_worker_thread`), and Qt
forbids deleting a QObject outside its own thread: a likely cause of the rare crash seen at
start-up in session 7, which was never caught with a stack.

Thread affinity: create and connect `Task`s on the GUI thread only.
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QRunnable, Qt, QThreadPool, Signal, Slot

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]
Emit = Callable[[object], None]
TaskFn = Callable[[Progress, threading.Event], Any]
StreamFn = Callable[[Progress, threading.Event, Emit], Any]

# Started tasks by id, held until their finishing signal is delivered (`live_tasks`; tests use
# it to fail on dangling work, tests/sos_desktop/conftest).
_RUNNING: dict[int, Task] = {}
_IDS = itertools.count(1)


class Cancelled(Exception):  # noqa: N818 - it is a state, like asyncio.CancelledError
    """Raised by a task function that saw its cancel event set."""


@dataclass(frozen=True, slots=True)
class TaskError:
    """A failure relayed from a worker: the exception and its formatted traceback."""

    task_name: str
    exception: BaseException
    traceback_text: str


class _Relay(QObject):
    """Emitted from worker threads with a task id; lives on the GUI thread, so delivery is
    queued there, and hands each signal to its task if that is still running."""

    progressed = Signal(int, float)
    yielded = Signal(int, object)
    succeeded = Signal(int, object)
    failed = Signal(int, object)
    cancelled = Signal(int)

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        queued = Qt.ConnectionType.QueuedConnection
        self.progressed.connect(self._on_progressed, queued)
        self.yielded.connect(self._on_yielded, queued)
        self.succeeded.connect(self._on_succeeded, queued)
        self.failed.connect(self._on_failed, queued)
        self.cancelled.connect(self._on_cancelled, queued)

    @Slot(int, float)
    def _on_progressed(self, task_id: int, fraction: float) -> None:
        if task := _running(task_id):
            task._on_progressed(fraction)

    @Slot(int, object)
    def _on_yielded(self, task_id: int, item: object) -> None:
        if task := _running(task_id):
            task._on_yielded(item)

    @Slot(int, object)
    def _on_succeeded(self, task_id: int, result: object) -> None:
        if task := _running(task_id):
            task._finish(task.succeeded, result)

    @Slot(int, object)
    def _on_failed(self, task_id: int, error: object) -> None:
        if task := _running(task_id):
            task._finish(task.failed, error)

    @Slot(int)
    def _on_cancelled(self, task_id: int) -> None:
        if task := _running(task_id):
            task._finish(task.cancelled)


_relay: _Relay | None = None


def _gui_relay() -> _Relay:
    """The application's relay, made on first use (on the GUI thread, by `Task.start`)."""
    global _relay
    if _relay is None or not shiboken6.isValid(_relay):
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("background tasks need a running QApplication")
        _relay = _Relay(app)  # deleted with the application, on its thread
    return _relay


def _running(task_id: int) -> Task | None:
    """The running task with this id, unless it is gone (its owner deleted it meanwhile)."""
    task = _RUNNING.get(task_id)
    if task is not None and not shiboken6.isValid(task):
        del _RUNNING[task_id]
        task._done = True  # plain Python state: readable on a deleted wrapper
        return None
    return task


class _Runnable(QRunnable):
    def __init__(
        self,
        task_id: int,
        name: str,
        fn: TaskFn | StreamFn,
        relay: _Relay,
        cancel: threading.Event,
        stream: bool,
    ) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._id, self._name, self._fn, self._relay = task_id, name, fn, relay
        self._cancel, self._stream = cancel, stream

    def run(self) -> None:
        task_id, relay, cancel = self._id, self._relay, self._cancel

        def progress(fraction: float) -> None:
            relay.progressed.emit(task_id, float(min(1.0, max(0.0, fraction))))

        def emit(item: object) -> None:
            relay.yielded.emit(task_id, item)

        try:
            if self._stream:
                result = self._fn(progress, cancel, emit)  # type: ignore[call-arg]
            else:
                result = self._fn(progress, cancel)  # type: ignore[call-arg]
        except Cancelled:
            relay.cancelled.emit(task_id)
        except Exception as exc:  # noqa: BLE001 - worker boundary: every failure is relayed
            relay.failed.emit(task_id, TaskError(self._name, exc, traceback.format_exc()))
        else:
            if cancel.is_set():
                relay.cancelled.emit(task_id)
            else:
                relay.succeeded.emit(task_id, result)
        finally:
            # Drop references so a large Study is not kept alive by the pool's bookkeeping.
            self._fn = _done


def _done(progress: Progress, cancel: threading.Event, emit: Emit | None = None) -> None:
    return None


class Task(QObject):
    """A unit of background work as seen from the GUI thread.

    Signals (delivered on the GUI thread): `progressed(float)`, `yielded(object)` (streaming
    tasks), `succeeded(object)`, `failed(TaskError)`, `cancelled()`, and `finished()` after any
    of the last three.
    """

    progressed = Signal(float)
    yielded = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(
        self,
        name: str,
        fn: TaskFn | StreamFn,
        parent: QObject | None = None,
        *,
        stream: bool = False,
    ) -> None:
        super().__init__(parent)
        self.name = name
        self.cancel_event = threading.Event()
        self._fn: TaskFn | StreamFn = fn
        self._stream = stream
        self._done = False
        self._id = next(_IDS)

    @property
    def done(self) -> bool:
        return self._done

    def start(self, pool: QThreadPool | None = None) -> Task:
        """Queue the work on `pool` (the global pool by default); returns self."""
        relay = _gui_relay()
        _RUNNING[self._id] = self
        runnable = _Runnable(self._id, self.name, self._fn, relay, self.cancel_event, self._stream)
        self._fn = _done
        (pool if pool is not None else QThreadPool.globalInstance()).start(runnable)
        logger.debug("task %s started", self.name)
        return self

    def cancel(self) -> None:
        """Ask the work to stop; `cancelled` follows once the function notices."""
        self.cancel_event.set()

    def _on_progressed(self, fraction: float) -> None:
        if not self._done:
            self.progressed.emit(fraction)

    def _on_yielded(self, item: object) -> None:
        if not self._done:
            self.yielded.emit(item)

    def _finish(self, signal: Any, *args: object) -> None:
        self._done = True
        logger.debug("task %s finished", self.name)
        try:
            signal.emit(*args)
            self.finished.emit()
        finally:
            _RUNNING.pop(self._id, None)
            # Unparent so a long session does not pile up finished tasks under their owner;
            # Python references (if any) keep it alive, and then it goes.
            self.setParent(None)


def run_task(name: str, fn: TaskFn, *, pool: QThreadPool | None = None) -> Task:
    """Create and start a task; connect to its signals right after (delivery is queued)."""
    return Task(name, fn).start(pool)


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise `Cancelled` if `cancel` is set; task functions call it between steps."""
    if cancel is not None and cancel.is_set():
        raise Cancelled


def live_tasks() -> list[Task]:
    """Tasks started and not yet finished (their result has not reached the GUI thread)."""
    return [t for t in list(_RUNNING.values()) if not t.done and shiboken6.isValid(t)]


def wait_for_pool(timeout_ms: int = 5000, pool: QThreadPool | None = None) -> bool:
    """Block until the pool's threads are idle (shutdown and tests only)."""
    return (pool if pool is not None else QThreadPool.globalInstance()).waitForDone(timeout_ms)


__all__ = [
    "Cancelled",
    "Emit",
    "Progress",
    "StreamFn",
    "Task",
    "TaskError",
    "check_cancel",
    "live_tasks",
    "run_task",
    "wait_for_pool",
]
