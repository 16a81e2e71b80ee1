"""The desktop's seam to `sos_core.inference.Predictor`: predictions in worker threads.

The Predictor (and torch with it) is imported lazily inside a worker, built once per model and
device, and reused by every request: one case, a whole worklist ("Predict all"), and the
re-prediction after a model reload. When no model exists yet, the service says so through
`unavailable` with one sentence; the app shows it and carries on without a prediction.
`reload_model` builds a new Predictor in a worker and swaps it in only once it loaded, so a
broken model folder never replaces a working one (the registry's promotion hooks in here).
Thread affinity: construct and call on the GUI thread; the `_execute*` / `_build` functions run
in the pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from sos_core.errors import ImagingError, ModelError, ModelNotFound
from sos_desktop.predictor_loader import (
    NO_MODEL_SENTENCE,
    NoModel,
    PredictorFactory,
    PredictorLike,
    load_default_predictor,
    model_folder,
    predictor_version,
)
from sos_desktop.workers import Emit, Task, TaskError, check_cancel

if TYPE_CHECKING:
    from sos_core.imaging.study import Study
    from sos_core.inference.prediction import Prediction

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PredictionResult:
    """A prediction for one case, with the model it came from.

    model_version: the prediction's own model version (card version + weights hash prefix).
    """

    case_id: str
    prediction: Prediction
    model_version: str
    stage_names: tuple[str, ...]
    card: Any = None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One case of a "Predict all" run: its result, or the error that stopped that case."""

    case_id: str
    result: PredictionResult | None
    error: TaskError | None = None


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """How a "Predict all" run ended (when it was not cancelled)."""

    predicted: int
    failed: int


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The active model: its card, the version shown with its predictions, where it runs."""

    card: Any
    version: str
    model_dir: Path | None
    device: str = ""


def _device_of(predictor: PredictorLike) -> str:
    device = getattr(predictor, "device", None)
    return str(getattr(device, "type", device or ""))


class PredictionService(QObject):
    """Runs predictions in the background and announces results on the GUI thread.

    Signals: `started(case_id)`, `predicted(PredictionResult)`, `unavailable(str)` (no model:
    one sentence), `failed(TaskError)` (anything else; relay it to the error boundary),
    `model_changed(ModelInfo)` after a (re)load, `model_failed(TaskError)` when a reload failed
    (the previous model stays active).
    """

    started = Signal(str)
    predicted = Signal(object)
    unavailable = Signal(str)
    failed = Signal(object)
    model_changed = Signal(object)
    model_failed = Signal(object)

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        device: str = "auto",
        factory: PredictorFactory = load_default_predictor,
        pool: QThreadPool | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._model_dir = model_dir
        self._device = device
        self._factory = factory
        self._pool = pool
        self._lock = threading.Lock()  # one predictor build / forward pass at a time
        self._predictor: PredictorLike | None = None
        self._task: Task | None = None
        self._batch: Task | None = None
        self._reload: Task | None = None
        self.info: ModelInfo | None = None

    @property
    def card(self) -> Any:
        """The active model's card, or None before the first model was loaded."""
        return self.info.card if self.info is not None else None

    def set_device(self, device: str) -> None:
        """Use `device` ("auto", "cpu", "cuda"); a loaded model is rebuilt on it right away (if
        that fails, e.g. no GPU, the error is reported and the loaded model stays in use)."""
        if device == self._device:
            return
        self._device = device
        with self._lock:
            loaded = self._predictor is not None
        if loaded:
            self.reload_model()

    def _device_arg(self) -> str | None:
        return None if self._device == "auto" else self._device

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done

    @property
    def batch_running(self) -> bool:
        return self._batch is not None and not self._batch.done

    # --- one case -----------------------------------------------------------------------------
    def request(self, case_id: str, study: Study, slice_index: int | None = None) -> Task:
        """Predict `study` (at `slice_index` for a volume; None lets the model choose)."""
        self.cancel()
        device = self._device_arg()

        def execute(progress: Callable[[float], None], cancel: threading.Event) -> object:
            progress(0.1)
            result = self._predict(case_id, study, slice_index, device, cancel)
            progress(1.0)
            return result

        task = Task(f"predict {case_id}", execute, parent=self)
        task.succeeded.connect(self._on_task_succeeded)
        task.failed.connect(self._on_task_failed)
        self._task = task
        self.started.emit(case_id)
        return task.start(self._pool)

    def cancel(self) -> None:
        if self._task is not None and not self._task.done:
            self._task.cancel()

    def _predict(
        self,
        case_id: str,
        study: Study,
        slice_index: int | None,
        device: str | None,
        cancel: threading.Event,
    ) -> PredictionResult:
        """Worker thread: build the predictor once, then one forward pass."""
        with self._lock:
            if self._predictor is None:
                self._predictor = self._factory(self._model_dir, device)
            predictor = self._predictor
            check_cancel(cancel)
            prediction = predictor.predict(study, slice=slice_index)
        card = predictor.card
        return PredictionResult(
            case_id=case_id,
            prediction=prediction,
            model_version=str(prediction.model_version or predictor_version(predictor)),
            stage_names=tuple(getattr(card, "stage_names", ()) or ()),
            card=card,
        )

    def _on_task_succeeded(self, result: object) -> None:
        self.predicted.emit(result)  # first: listeners of model_changed see the result shown
        if isinstance(result, PredictionResult):
            self._note_card(result.card, result.model_version)

    def _note_card(self, card: Any, version: str) -> None:
        """The first prediction also tells which model is active (when none was announced)."""
        if self.info is None or self.info.card is not card:
            device = _device_of(self._predictor) if self._predictor is not None else ""
            self.info = ModelInfo(card, version, self._model_dir, device)
            self.model_changed.emit(self.info)

    def _on_task_failed(self, error: object) -> None:
        sentence = self.unavailable_sentence(error)
        if sentence is not None:
            self.unavailable.emit(sentence)
        else:
            self.failed.emit(error)

    @staticmethod
    def unavailable_sentence(error: object) -> str | None:
        """The sentence for "there is no usable model", or None for any other failure."""
        exc = error.exception if isinstance(error, TaskError) else None
        if isinstance(exc, NoModel | ModelNotFound):
            return NO_MODEL_SENTENCE
        if isinstance(exc, ModelError):
            logger.warning("model could not be used: %s", type(exc).__name__)
            return f"No model available: {exc}"
        return None

    # --- the whole worklist -------------------------------------------------------------------
    def request_batch(self, cases: Sequence[tuple[str, Path]]) -> Task:
        """Open and predict each (case id, path) in turn; one `BatchItem` is yielded per case.

        The task's `progressed` gives the fraction done, `yielded` each `BatchItem`,
        `succeeded` a `BatchSummary`; `cancel()` stops before the next case.
        """
        self.cancel_batch()
        items = [(str(cid), Path(path)) for cid, path in cases]
        device = self._device_arg()

        def execute(
            progress: Callable[[float], None], cancel: threading.Event, emit: Emit
        ) -> BatchSummary:
            return self._execute_batch(items, device, progress, cancel, emit)

        task = Task(f"predict all ({len(items)} cases)", execute, parent=self, stream=True)
        task.yielded.connect(self._on_batch_item)
        task.failed.connect(self._on_task_failed)
        self._batch = task
        return task.start(self._pool)

    def _on_batch_item(self, item: object) -> None:
        if isinstance(item, BatchItem) and item.result is not None:
            self._note_card(item.result.card, item.result.model_version)

    def cancel_batch(self) -> None:
        if self._batch is not None and not self._batch.done:
            self._batch.cancel()

    def _execute_batch(
        self,
        items: list[tuple[str, Path]],
        device: str | None,
        progress: Callable[[float], None],
        cancel: threading.Event,
        emit: Emit,
    ) -> BatchSummary:
        """Worker thread: a case that cannot be opened is reported and skipped; a model
        problem ends the run (every further case would fail the same way)."""
        from sos_core.imaging import open_study

        done = failed = 0
        for i, (case_id, path) in enumerate(items):
            check_cancel(cancel)
            try:
                study = open_study(path)
                check_cancel(cancel)
                emit(BatchItem(case_id, self._predict(case_id, study, None, device, cancel)))
                done += 1
            except ImagingError as exc:
                logger.info("predict all: case %s skipped (%s)", case_id, type(exc).__name__)
                emit(BatchItem(case_id, None, TaskError("predict all", exc, "")))
                failed += 1
            progress((i + 1) / max(1, len(items)))
        return BatchSummary(done, failed)

    # --- model (re)loading --------------------------------------------------------------------
    def preload(self) -> Task:
        """Load the model now (at start-up) rather than with the first prediction; a prediction
        asked meanwhile waits for it instead of loading a second copy."""
        device = self._device_arg()

        def build(progress: Callable[[float], None], cancel: threading.Event) -> object:
            with self._lock:
                if self._predictor is None:
                    self._predictor = self._factory(self._model_dir, device)
                predictor, folder = self._predictor, self._model_dir
            return ModelInfo(
                predictor.card, predictor_version(predictor), folder, _device_of(predictor)
            )

        task = Task("load model", build, parent=self)
        task.succeeded.connect(self._on_model_loaded)
        task.failed.connect(self._on_model_failed)
        return task.start(self._pool)

    def reload_model(self, model_dir: Path | None = None) -> Task:
        """Build a new Predictor in a worker (from `model_dir`, else the current folder) and make
        it the active one once it loaded; `model_changed` or `model_failed` / `unavailable`
        follows. Predictions keep using the previous model until then."""
        folder = Path(model_dir) if model_dir is not None else self._model_dir
        device = self._device_arg()
        factory = self._factory

        def build(progress: Callable[[float], None], cancel: threading.Event) -> object:
            progress(0.1)
            predictor = factory(folder, device)  # outside the lock: predictions go on meanwhile
            check_cancel(cancel)
            with self._lock:
                self._predictor = predictor
                self._model_dir = folder
            return ModelInfo(
                predictor.card, predictor_version(predictor), folder, _device_of(predictor)
            )

        if self._reload is not None and not self._reload.done:
            self._reload.cancel()
        task = Task("load model", build, parent=self)
        task.succeeded.connect(self._on_model_loaded)
        task.failed.connect(self._on_model_failed)
        self._reload = task
        return task.start(self._pool)

    def _on_model_loaded(self, info: object) -> None:
        if isinstance(info, ModelInfo):
            self.info = info
            logger.info("model %s active", info.version)
            self.model_changed.emit(info)

    def _on_model_failed(self, error: object) -> None:
        sentence = self.unavailable_sentence(error)
        if sentence is not None and self.info is None:
            self.unavailable.emit(sentence)
        else:
            self.model_failed.emit(error)


__all__ = [
    "NO_MODEL_SENTENCE",
    "BatchItem",
    "BatchSummary",
    "ModelInfo",
    "PredictionResult",
    "PredictionService",
    "PredictorFactory",
    "PredictorLike",
    "load_default_predictor",
    "model_folder",
    "predictor_version",
]
