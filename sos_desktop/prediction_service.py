"""The desktop's seam to `sos_core.inference.Predictor`: predictions in a worker thread.

The Predictor (and torch with it) is imported lazily inside the worker, built once, and reused.
When no Predictor or no model exists yet, the service says so through `unavailable` with one
sentence; the app shows it in the prediction panel and carries on without a prediction.
Thread affinity: construct and call on the GUI thread; `_execute` runs in the pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, QThreadPool, Signal

from sos_core.errors import ModelError
from sos_desktop.workers import Task, TaskError, check_cancel

if TYPE_CHECKING:
    from sos_core.imaging.study import Study
    from sos_core.inference.prediction import Prediction

logger = logging.getLogger(__name__)

NO_MODEL_SENTENCE = "No model available yet: the image can be reviewed and labelled by hand."


class PredictorLike(Protocol):
    """What the app uses of `sos_core.inference.Predictor`."""

    card: Any

    def predict(self, study: Study, slice: int | None = None) -> Prediction: ...  # noqa: A002


PredictorFactory = Callable[[Path | None, str | None], PredictorLike]


class _NoModel(LookupError):
    """No Predictor class is installed yet (the inference package has not landed)."""


def load_default_predictor(model_dir: Path | None, device: str | None) -> PredictorLike:
    """Build `sos_core.inference.Predictor`; imported here so torch loads in the worker only."""
    import sos_core.inference as inference

    cls = getattr(inference, "Predictor", None)
    if cls is None:
        raise _NoModel(NO_MODEL_SENTENCE)
    return cls(model_dir=model_dir, device=device)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class PredictionResult:
    """A prediction for one case, with the model it came from."""

    case_id: str
    prediction: Prediction
    model_version: str
    stage_names: tuple[str, ...]
    card: Any = None


class PredictionService(QObject):
    """Runs predictions in the background and announces results on the GUI thread.

    Signals: `started(case_id)`, `predicted(PredictionResult)`, `unavailable(str)` (no model:
    one sentence), `failed(TaskError)` (anything else; relay it to the error boundary).
    """

    started = Signal(str)
    predicted = Signal(object)
    unavailable = Signal(str)
    failed = Signal(object)

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
        self.card: Any = None

    def set_device(self, device: str) -> None:
        """Use `device` ("auto", "cpu", "cuda") from the next prediction on."""
        if device != self._device:
            self._device = device
            with self._lock:
                self._predictor = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done

    def request(self, case_id: str, study: Study, slice_index: int | None = None) -> Task:
        """Predict `study` (at `slice_index` for a volume; None lets the model choose)."""
        self.cancel()
        device = None if self._device == "auto" else self._device

        def execute(progress: Callable[[float], None], cancel: threading.Event) -> object:
            return self._execute(case_id, study, slice_index, device, progress, cancel)

        task = Task(f"predict {case_id}", execute, parent=self)
        task.succeeded.connect(self._on_task_succeeded)
        task.failed.connect(self._on_task_failed)
        self._task = task
        self.started.emit(case_id)
        return task.start(self._pool)

    def cancel(self) -> None:
        if self._task is not None and not self._task.done:
            self._task.cancel()

    def _execute(
        self,
        case_id: str,
        study: Study,
        slice_index: int | None,
        device: str | None,
        progress: Callable[[float], None],
        cancel: threading.Event,
    ) -> PredictionResult:
        """Worker thread: build the predictor once, then one forward pass."""
        with self._lock:
            if self._predictor is None:
                progress(0.1)
                self._predictor = self._factory(self._model_dir, device)
            predictor = self._predictor
            check_cancel(cancel)
            progress(0.5)
            prediction = predictor.predict(study, slice=slice_index)
        card = predictor.card
        progress(1.0)
        return PredictionResult(
            case_id=case_id,
            prediction=prediction,
            model_version=str(getattr(card, "version", prediction.model_version)),
            stage_names=tuple(getattr(card, "stage_names", ()) or ()),
            card=card,
        )

    def _on_task_succeeded(self, result: object) -> None:
        if isinstance(result, PredictionResult):
            self.card = result.card
        self.predicted.emit(result)

    def _on_task_failed(self, error: object) -> None:
        exc = error.exception if isinstance(error, TaskError) else None
        if isinstance(exc, _NoModel):
            self.unavailable.emit(NO_MODEL_SENTENCE)
        elif isinstance(exc, ModelError):
            logger.warning("model could not be used: %s", type(exc).__name__)
            self.unavailable.emit(f"No model available: {exc}")
        else:
            self.failed.emit(error)


__all__ = [
    "NO_MODEL_SENTENCE",
    "PredictionResult",
    "PredictionService",
    "PredictorFactory",
    "PredictorLike",
    "load_default_predictor",
]
