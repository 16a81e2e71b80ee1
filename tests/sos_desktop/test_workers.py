"""Workers: results, errors, progress and cancellation reach the GUI thread as signals."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from sos_core.errors import CorruptFile
from sos_desktop.workers import Task, TaskError, check_cancel, live_tasks, run_task


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
