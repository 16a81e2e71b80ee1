"""Building the real `sos_core.inference.Predictor` for the desktop, without importing torch early.

`load_default_predictor` runs in a worker thread (torch is imported there, never at start-up);
`model_folder` finds the folder first so that, when no model exists at all, the app says so
without loading torch. Thread affinity: any thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sos_core.imaging.study import Study
    from sos_core.inference.prediction import Prediction

logger = logging.getLogger(__name__)

NO_MODEL_SENTENCE = "No model available yet: the image can be reviewed and labelled by hand."
MODEL_ENV = "SOS_MODEL_DIR"  # the same variable `sos_core.inference.predictor` reads


class PredictorLike(Protocol):
    """What the app uses of `sos_core.inference.Predictor`."""

    card: Any

    def predict(self, study: Study, slice: int | None = None) -> Prediction: ...  # noqa: A002


PredictorFactory = Callable[[Path | None, str | None], PredictorLike]


class NoModel(LookupError):
    """No model folder exists yet (e.g. the embedded model has not been trained)."""


def model_folder(model_dir: Path | None) -> Path:
    """The folder a Predictor will load: `model_dir`, else $SOS_MODEL_DIR, else the embedded one.

    Mirrors `sos_core.inference.predictor.default_model_dir`, which cannot be imported without
    importing torch; checking the folder first keeps torch out of the process when there is no
    model at all.
    """
    if model_dir is not None:
        return Path(model_dir)
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    from resources import resource_path

    return resource_path("models/student")


_early: Any = None  # a PredictorProcess started by `start_early`, until claimed


def start_early() -> None:
    """Start the default model's prediction process now, before Qt and the window load.

    Called by the launcher first thing: the child imports torch and loads the model on the
    other core while this process builds the window (`sos_core.inference.predictor_process`).
    The first `load_default_predictor` for the same folder and device claims it.
    """
    global _early
    folder = model_folder(None)
    if _early is None and folder.is_dir():
        from sos_core.inference.predictor_process import PredictorProcess

        _early = PredictorProcess(folder, None)


def _claim_early(folder: Path, device: str | None) -> PredictorLike | None:
    """The early process if it serves `folder` on `device` and loaded fine, else None."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    if early.model_dir != folder or device is not None:
        early.close()  # another model or an explicit device was chosen meanwhile
        return None
    try:
        early.wait_ready()
    except Exception as exc:  # noqa: BLE001 - fall back to loading in this process
        logger.warning("early prediction process unusable (%s)", type(exc).__name__)
        early.close()
        return None
    return early


def load_default_predictor(model_dir: Path | None, device: str | None) -> PredictorLike:
    """Worker thread: the early prediction process when it fits, else build
    `sos_core.inference.predictor.Predictor` here (torch is imported then)."""
    folder = model_folder(model_dir)
    if not folder.is_dir():
        raise NoModel(NO_MODEL_SENTENCE)
    early = _claim_early(folder, device)
    if early is not None:
        return early
    from sos_core.inference.predictor import Predictor

    return Predictor(model_dir=folder, device=device)


def predictor_version(predictor: PredictorLike) -> str:
    """The version shown with every prediction: the card's version + weights hash prefix (RG-3)."""
    version = getattr(predictor, "version", None)
    if isinstance(version, str) and version:
        return version
    card = predictor.card
    sha = str(getattr(card, "weights_sha256", "") or "")
    base = str(getattr(card, "version", "unknown"))
    return f"{base}+{sha[:8]}" if sha and "+" not in base else base


__all__ = [
    "MODEL_ENV",
    "NO_MODEL_SENTENCE",
    "NoModel",
    "PredictorFactory",
    "PredictorLike",
    "load_default_predictor",
    "model_folder",
    "predictor_version",
    "start_early",
]
