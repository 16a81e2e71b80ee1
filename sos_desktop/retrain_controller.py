"""Retraining from the app, and following the model registry's active pointer (issue 7, RG-9).

`RetrainController` runs `sos_core.retrain.start_retrain_process` on the open review store (a
separate process: training never shares the GUI's interpreter) and polls its handle from a
QTimer on the GUI thread; `poll()` never waits, so the interface stays responsive. A second
QTimer stats the registry's pointer file every few seconds: when its generation changes (our
promotion, another app instance's, a rollback from the command line) the window reloads the
registry's active model through `MainWindow.reload_model`, without a restart.

`startup_model_dir` and `report_sentence` are plain functions (no Qt) so they are testable on
their own. Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from sos_core.errors import SosError
from sos_core.retrain.files import read_json
from sos_core.retrain.registry import (
    CARD_NAME,
    POINTER_NAME,
    REGISTRY_DIR,
    VERSIONS_DIR,
    embedded_models_dir,
)
from sos_desktop.predictor_loader import MODEL_ENV
from sos_desktop.workers import Task

if TYPE_CHECKING:
    from sos_core.retrain.process import RetrainProcess
    from sos_core.retrain.records import RetrainOptions, RetrainReport
    from sos_desktop.main_window import MainWindow

logger = logging.getLogger(__name__)

POINTER_POLL_MS = 3000  # a stat every 3 s is negligible and a promotion shows within seconds
PROCESS_POLL_MS = 200
Starter = Callable[..., "RetrainProcess"]

_STEPS = (  # (progress below which, step text): the phases `sos_core.retrain.run` reports
    (0.05, "Preparing the experts' labels for training\u2026"),
    (0.35, "Fine-tuning the teacher on the experts' crops\u2026"),
    (0.80, "Distilling the student from the teacher\u2026"),
    (0.90, "Scoring both models on the locked validation set\u2026"),
    (2.00, "Registering the new model version\u2026"),
)


# --- plain functions ------------------------------------------------------------------------------
def registry_pointer(store_folder: Path) -> dict[str, Any] | None:
    """The registry's active pointer of the store in `store_folder`, None if it has none yet.

    Reads the file only (unlike `ModelRegistry`, it creates no folder and seeds nothing), so the
    GUI thread may call it. A damaged pointer reads as None (the registry reports it when used).
    """
    path = Path(store_folder) / REGISTRY_DIR / POINTER_NAME
    try:
        doc = read_json(path)
        str(doc["active"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("the model registry's pointer cannot be read; keeping the current model")
        return None
    return dict(doc)


def registry_active_dir(store_folder: Path) -> Path | None:
    """The active version's folder in the store's registry, None when there is no usable one."""
    doc = registry_pointer(store_folder)
    if doc is None:
        return None
    version = str(doc["active"])
    if version.startswith(".") or "/" in version or "\\" in version:
        return None
    folder = Path(store_folder) / REGISTRY_DIR / VERSIONS_DIR / version
    return folder if (folder / CARD_NAME).is_file() else None


def startup_model_dir(
    store_folder: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    embedded: Path | None = None,
) -> Path:
    """The model the app loads at start.

    An explicit `$SOS_MODEL_DIR` first (a deliberate override), then the active version of the
    store's model registry, else the embedded default student (`resources/models/student`).
    """
    override = (os.environ if env is None else env).get(MODEL_ENV)
    if override:
        return Path(override)
    if store_folder is not None:
        active = registry_active_dir(Path(store_folder))
        if active is not None:
            return active
    return (embedded if embedded is not None else embedded_models_dir()) / "student"


def step_text(fraction: float) -> str:
    """The current step of a run, from its overall progress."""
    return next(text for limit, text in _STEPS if fraction < limit)


def _gate_numbers(gate: Mapping[str, Any] | None) -> str:
    """'accuracy 62 % → 71 %, F1 0.58 → 0.69' from the gate's overall checks ('' if absent)."""
    checks = {
        c.get("metric"): c for c in (gate or {}).get("checks", []) if c.get("scope") == "overall"
    }
    parts = []
    if "accuracy" in checks:
        c = checks["accuracy"]
        parts.append(f"accuracy {c['active']:.0%} \u2192 {c['candidate']:.0%}")
    if "f1_macro" in checks:
        c = checks["f1_macro"]
        parts.append(f"F1 {c['active']:.2f} \u2192 {c['candidate']:.2f}")
    return ", ".join(parts)


def report_sentence(report: RetrainReport) -> str:
    """One clinician-readable sentence: what happened, and for a gated run the key numbers."""
    numbers = _gate_numbers(report.gate)
    on_set = f" (locked validation set, current \u2192 new: {numbers})" if numbers else ""
    if report.status == "promoted":
        return (
            f"The new model {report.candidate_version} learned from {report.n_labels} expert "
            f"label(s), was not worse on the locked validation set{on_set}, and is now in use."
        )
    if report.status == "rejected":
        reasons = (report.gate or {}).get("reasons") or []
        why = f": {reasons[0]}" if reasons else ""
        return (
            f"The current model {report.parent_version} was kept because the new one was worse "
            f"on the locked validation set{why}{on_set}. Its {report.n_labels} label(s) stay "
            "waiting for the next run."
        )
    if report.status == "nothing_to_learn":
        return "There is nothing to learn from: no expert label is waiting to be learned."
    return report.message


# --- the controller -------------------------------------------------------------------------------
class RetrainController(QObject):
    """Signals: `queue_loaded(object)` (a `RetrainQueue`), `started()`,
    `progressed(float, str)` (fraction, step), `finished(object)` (the `RetrainReport`, or a
    sentence when the run failed), `model_reload_requested(object)` (the folder)."""

    queue_loaded = Signal(object)
    queue_failed = Signal(str)
    started = Signal()
    progressed = Signal(float, str)
    finished = Signal(object)
    model_reload_requested = Signal(object)

    def __init__(
        self,
        win: MainWindow,
        model_dir: Path | None = None,
        *,
        follow_store: bool = True,
        starter: Starter | None = None,
        options: RetrainOptions | None = None,
        embedded: Path | None = None,
        pointer_poll_ms: int = POINTER_POLL_MS,
    ) -> None:
        super().__init__(win)
        self.win = win
        self.model_dir = model_dir  # the folder last asked of the prediction service
        self.follow_store = follow_store  # False: the window was given its model explicitly
        self.options, self.embedded = options, embedded
        self.handle: RetrainProcess | None = None
        self.last_report: RetrainReport | None = None
        self.dialog: Any = None
        self._starter = starter
        self._folder: Path | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._generation: int | None = None
        self._seen_pointer = False
        self._exited_polls = 0
        self._process_timer = QTimer(self)
        self._process_timer.setInterval(PROCESS_POLL_MS)
        self._process_timer.timeout.connect(self.poll)
        self.pointer_timer = QTimer(self)
        self.pointer_timer.setInterval(pointer_poll_ms)
        self.pointer_timer.timeout.connect(self.check_registry)
        win.store.opened.connect(self._on_store_opened)

    @property
    def store_folder(self) -> Path | None:
        return self._folder

    @property
    def running(self) -> bool:
        return self.handle is not None

    # --- the dialog ---------------------------------------------------------------------------
    def show_dialog(self) -> Any:
        """Review ▸ Retrain from reviews…: the non-modal dialog, its queue counts refreshed."""
        from sos_desktop.retrain_dialog import RetrainDialog

        if self.dialog is None:
            self.dialog = RetrainDialog(self, self.win)
        self.dialog.show()
        self.dialog.raise_()
        self.load_queue()
        return self.dialog

    def load_queue(self) -> Task | None:
        """Read the retraining queue in a worker (its own short-lived store connection)."""
        folder = self._folder
        if folder is None:
            self.queue_failed.emit("No review store is open yet, so there is no queue to show.")
            return None

        def work(_progress: Callable[[float], None], _cancel: Any) -> object:
            from sos_core.review.store import ReviewStore

            with ReviewStore.open(folder, create=False) as store:
                return store.queue()

        task = Task("read retraining queue", work, parent=self)
        task.succeeded.connect(self.queue_loaded.emit)
        task.failed.connect(lambda err: self.queue_failed.emit(_error_sentence(err)))
        return task.start()

    # --- a run --------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a run on the open store in a separate process; False if none could start."""
        if self.handle is not None:
            return False
        if self._folder is None:
            self.finished.emit("No review store is open, so there is nothing to retrain from.")
            return False
        starter = self._starter
        if starter is None:
            from sos_core.retrain.process import start_retrain_process

            starter = start_retrain_process
        threads = max(1, (os.cpu_count() or 2) - 1)  # one core stays with the interface
        try:
            self.handle = starter(
                self._folder, options=self.options, embedded=self.embedded, threads=threads
            )
        except (OSError, SosError) as exc:
            self.finished.emit(f"Retraining could not start: {exc}")
            return False
        self._exited_polls = 0
        self._process_timer.start()
        self.started.emit()
        self.progressed.emit(0.0, "Starting the retraining process\u2026")
        return True

    def cancel(self) -> None:
        """Ask the run to stop after its current epoch; it then reports "cancelled"."""
        if self.handle is not None:
            self.handle.cancel()
            self.progressed.emit(
                self.handle.fractions[-1] if self.handle.fractions else 0.0,
                "Cancelling after the current step\u2026",
            )

    def poll(self) -> None:
        """Timer slot: relay what the child sent; never waits."""
        handle = self.handle
        if handle is None:
            return
        for event in handle.poll():
            if event.kind == "progress":
                self.progressed.emit(event.fraction, step_text(event.fraction))
            else:
                self._finish(event.report if event.report is not None else event.error)
                return
        if not handle.running:
            # The child may have exited a moment before its last message reached the queue;
            # only after a few empty polls is a silent exit a crash.
            self._exited_polls += 1
            if self._exited_polls > 5:
                self._finish("The retraining process stopped unexpectedly; nothing changed.")

    def _finish(self, outcome: object) -> None:
        self._process_timer.stop()
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.process.join(timeout=0)  # reap it; it has exited or is about to
        if isinstance(outcome, str):
            outcome = outcome or "Retraining failed."
        else:
            self.last_report = outcome  # type: ignore[assignment]
            logger.info("retraining finished: %s", getattr(outcome, "status", "?"))
            if getattr(outcome, "promoted", False):
                self.check_registry()
        self.finished.emit(outcome)

    # --- following the registry ---------------------------------------------------------------
    def _on_store_opened(self, location: object) -> None:
        if not isinstance(location, Path):
            return
        folder = location.parent if location.is_file() else location
        self._folder = folder
        self._stamp, self._generation, self._seen_pointer = None, None, False
        self.check_registry()
        self.pointer_timer.start()

    def check_registry(self) -> bool:
        """Reload the registry's active model if its pointer changed; True if a reload began.

        The first look at a store's pointer only notes its generation when the window was given
        its model explicitly (`follow_store=False`).
        """
        if self._folder is None:
            return False
        path = self._folder / REGISTRY_DIR / POINTER_NAME
        try:
            st = path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._stamp and self._seen_pointer:
            return False
        self._stamp = stamp
        first, self._seen_pointer = not self._seen_pointer, True
        doc = registry_pointer(self._folder) if stamp is not None else None
        generation = int(doc.get("generation", 0)) if doc is not None else None
        if not first and generation == self._generation:
            return False
        self._generation = generation
        target = registry_active_dir(self._folder)
        if target is None or target == self.model_dir or (first and not self.follow_store):
            return False
        logger.info("the registry's active model changed (generation %s); reloading", generation)
        self.model_dir = target
        self.model_reload_requested.emit(target)
        self.win.reload_model(model_dir=target)
        return True

    def close(self) -> None:
        """Window closing: stop the timers and ask a running child to stop (it exits itself)."""
        self.pointer_timer.stop()
        self._process_timer.stop()
        if self.handle is not None:
            self.handle.cancel()
        if self.dialog is not None:
            self.dialog.close()


def _error_sentence(error: object) -> str:
    exc = getattr(error, "exception", None)
    if isinstance(exc, SosError):
        return str(exc)
    return "The retraining queue could not be read."


__all__ = [
    "POINTER_POLL_MS",
    "RetrainController",
    "registry_active_dir",
    "registry_pointer",
    "report_sentence",
    "startup_model_dir",
    "step_text",
]
