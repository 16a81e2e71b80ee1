"""Retraining in a separate process, for the desktop app (STYLE F: one run, its own process).

`start_retrain_process(store_folder)` starts a `spawn` child that opens its own `ReviewStore`
and registry and runs `retrain`. Progress comes back through a queue, cancel goes in through an
event, and the child's last message is the `RetrainReport` (or the sentence of the typed error
that stopped it). The handle is polled from the caller's thread; it never blocks on its own
unless `wait()` is called, and it touches no GUI object.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue as queue_mod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sos_core.errors import SosError
from sos_core.retrain.records import RetrainOptions, RetrainReport

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetrainEvent:
    """One message from the child: kind "progress" (fraction), "done" (report) or "error"."""

    kind: str
    fraction: float = 0.0
    report: RetrainReport | None = None
    error: str = ""
    error_type: str = ""


class RetrainProcess:
    """Handle on a running retraining child process. Use from one thread."""

    def __init__(self, process: BaseProcess, messages: Queue[Any], cancel_event: Event) -> None:
        self.process = process
        self._messages = messages
        self._cancel = cancel_event
        self.result: RetrainEvent | None = None
        self.fractions: list[float] = []  # every progress value received so far

    def cancel(self) -> None:
        """Ask the child to stop after its current epoch; it then reports "cancelled"."""
        self._cancel.set()

    def poll(self) -> list[RetrainEvent]:
        """Every message that arrived since the last call, without waiting."""
        out = []
        while True:
            try:
                out.append(self._event(self._messages.get_nowait()))
            except queue_mod.Empty:
                break
        return out

    def wait(self, timeout: float | None = None) -> RetrainEvent | None:
        """Wait for the final message ("done" or "error"); None if `timeout` passed first."""
        while self.result is None:
            try:
                self._event(self._messages.get(timeout=timeout))
            except queue_mod.Empty:
                return None
        self.process.join(timeout=10)
        return self.result

    @property
    def running(self) -> bool:
        return self.process.is_alive()

    def _event(self, raw: tuple[Any, ...]) -> RetrainEvent:
        kind = raw[0]
        if kind == "progress":
            self.fractions.append(float(raw[1]))
            return RetrainEvent("progress", fraction=float(raw[1]))
        if kind == "done":
            self.result = RetrainEvent("done", fraction=1.0, report=RetrainReport.from_dict(raw[1]))
        else:
            self.result = RetrainEvent("error", error=str(raw[2]), error_type=str(raw[1]))
        return self.result


def start_retrain_process(
    store_folder: str | Path,
    *,
    options: RetrainOptions | None = None,
    embedded: str | Path | None = None,
    threads: int | None = None,
) -> RetrainProcess:
    """Start `retrain` on the store in `store_folder` in a new (spawned) process.

    Parameters
    ----------
    store_folder
        The review store's folder; the child opens it itself (never shares a connection).
    options
        The run's options (picklable).
    embedded
        Where the embedded models live (default `resources/models`).
    threads
        CPU threads the child's torch may use (default: all cores); the app may leave one
        core to the interface.
    """
    ctx = mp.get_context("spawn")  # fork would copy torch threads and the caller's SQLite handle
    messages = ctx.Queue()
    cancel = ctx.Event()
    process = ctx.Process(
        target=_child,
        args=(
            str(store_folder),
            options,
            str(embedded) if embedded else None,
            threads,
            messages,
            cancel,
        ),
        name="sos-retrain",
        daemon=False,
    )
    process.start()
    logger.info("retraining started in process %s", process.pid)
    return RetrainProcess(process, messages, cancel)


def _child(
    store_folder: str,
    options: RetrainOptions | None,
    embedded: str | None,
    threads: int | None,
    messages: Queue[Any],
    cancel: Any,
) -> None:  # pragma: no cover - runs in the child; covered through start_retrain_process
    from sos_core.device import configure_cpu_threads
    from sos_core.retrain.registry import ModelRegistry
    from sos_core.retrain.run import retrain
    from sos_core.review.store import ReviewStore

    try:
        configure_cpu_threads(threads)
        with ReviewStore.open(store_folder, create=False) as store:
            registry = ModelRegistry.for_store(store, embedded=embedded)
            report = retrain(
                store,
                registry,
                options=options,
                progress=lambda f: messages.put(("progress", f)),
                cancel=cancel,
            )
        messages.put(("done", report.to_dict()))
    except SosError as exc:
        messages.put(("error", type(exc).__name__, str(exc)))
    except Exception as exc:  # noqa: BLE001 - the process boundary: report, never die silently
        logging.getLogger(__name__).exception("retraining failed")
        messages.put(("error", type(exc).__name__, "Retraining failed with an internal fault."))
