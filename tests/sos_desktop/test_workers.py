"""Workers: results, errors, progress and cancellation reach the GUI thread as signals."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, QThread
from PySide6.QtWidgets import QApplication

from sos_core.errors import CorruptFile
from sos_desktop.workers import (
    Task,
    TaskError,
    check_cancel,
    live_tasks,
    run_task,
    wait_for_pool,
)


def test_result_arrives_on_the_gui_thread(qtbot: Any) -> None:
    seen: dict[str, object] = {}

    def work(progress: Any, cancel: threading.Event) -> int:
        seen["worker_thread"] = QThread.currentThread()
        progress(0.5)
        return 42

    task = Task("answer", work)
    progress: list[float] = []
    task.progressed.connect(progress.append)
    task.succeeded.connect(lambda r: seen.update(result=r, thread=QThread.currentThread()))
    with qtbot.waitSignal(task.finished, timeout=5000):
        task.start()
    main = QApplication.instance().thread()  # type: ignore[union-attr]
    assert seen["result"] == 42
    assert seen["thread"] is main
    assert seen["worker_thread"] is not main
    assert progress == [0.5]
    assert task.done
    assert task not in live_tasks()


def test_errors_are_relayed_with_their_traceback(qtbot: Any) -> None:
    def work(progress: Any, cancel: threading.Event) -> None:
        raise CorruptFile("x.dcm is damaged and cannot be opened.")

    task = run_task("broken", work)
    with qtbot.waitSignal(task.failed, timeout=5000) as blocker:
        pass
    err = blocker.args[0]
    assert isinstance(err, TaskError)
    assert isinstance(err.exception, CorruptFile)
    assert "CorruptFile" in err.traceback_text
    assert "work" in err.traceback_text


def test_cancel_stops_cooperative_work(qtbot: Any) -> None:
    gate = threading.Event()

    def work(progress: Any, cancel: threading.Event) -> None:
        gate.wait(5)
        check_cancel(cancel)
        pytest.fail("cancel was not seen")

    task = run_task("slow", work)
    task.cancel()
    gate.set()
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        pass
    assert task.done


def test_result_of_cancelled_work_is_dropped(qtbot: Any) -> None:
    gate = threading.Event()
    results: list[object] = []

    def work(progress: Any, cancel: threading.Event) -> str:
        gate.wait(5)
        return "late"

    task = run_task("ignores-cancel", work)
    task.succeeded.connect(results.append)
    task.cancel()
    gate.set()
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        pass
    assert results == []


def test_streamed_items_arrive_in_order_before_the_result(qtbot: Any) -> None:
    events: list[object] = []

    def work(progress: Any, cancel: threading.Event, emit: Any) -> str:
        for i in range(5):
            emit(i)
        return "done"

    task = Task("stream", work, stream=True)
    task.yielded.connect(events.append)
    task.succeeded.connect(lambda r: events.append(("result", r)))
    with qtbot.waitSignal(task.finished, timeout=5000):
        task.start()
    assert events == [0, 1, 2, 3, 4, ("result", "done")]


def test_no_qobject_of_the_task_machinery_dies_on_a_worker_thread(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Qt forbids deleting a QObject outside its thread. Track every QObject that
    # sos_desktop.workers makes while 300 tasks run, each dropped by its owner as it finishes.
    from sos_desktop import workers

    on_gui: list[bool] = []
    main = threading.main_thread()

    def record(*_: object) -> None:
        on_gui.append(threading.current_thread() is main)

    for cls in [c for c in vars(workers).values() if isinstance(c, type)]:
        if issubclass(cls, QObject) and cls.__module__ == workers.__name__:
            original = cls.__init__

            def init(self: QObject, *args: Any, _original: Any = original, **kw: Any) -> None:
                _original(self, *args, **kw)
                self.destroyed.connect(record, Qt.ConnectionType.DirectConnection)

            monkeypatch.setattr(cls, "__init__", init)

    owner: dict[str, Task] = {}
    finished = threading.Event()
    count = 0

    def work(progress: Any, cancel: threading.Event) -> int:
        progress(0.5)
        return len([bytearray(100) for _ in range(2000)])  # holds the GIL a while

    def start_next(_: object = None) -> None:
        nonlocal count
        owner.pop("current", None)  # the owner lets go of the finished task
        if count == 300:
            finished.set()
            return
        count += 1
        task = Task("tiny", work)
        task.succeeded.connect(start_next)
        owner["current"] = task
        task.start()

    start_next()
    qtbot.waitUntil(finished.is_set, timeout=60_000)
    assert wait_for_pool()
    gc.collect()
    qtbot.wait(50)
    assert len(on_gui) >= 300  # every task was destroyed, so the tracking saw them
    assert all(on_gui), f"{on_gui.count(False)} task objects were destroyed on a worker thread"


def test_a_task_whose_owner_is_deleted_while_it_runs_ends_quietly(qtbot: Any) -> None:
    # Closing a window deletes its services while their work may still be running.
    import shiboken6

    owner = QObject()
    gate = threading.Event()
    ran = threading.Event()

    def work(progress: Any, cancel: threading.Event) -> str:
        ran.set()
        gate.wait(5)
        progress(1.0)
        return "late"

    task = Task("orphaned", work, owner)
    task.start()
    assert ran.wait(5)
    shiboken6.delete(owner)  # deletes the task with it, as Qt does for children
    assert not shiboken6.isValid(task)
    gate.set()
    assert wait_for_pool()
    qtbot.wait(50)  # the late progress and result reach the GUI thread and are dropped
    assert task not in live_tasks()
    follow_up = run_task("after", lambda progress, cancel: 7)
    with qtbot.waitSignal(follow_up.succeeded, timeout=5000) as blocker:
        pass
    assert blocker.args == [7]
