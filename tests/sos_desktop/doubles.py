"""Test doubles for the desktop tests (never part of the app: the app has no fake predictor).

Most desktop tests use the real Predictor on the session's tiny trained model (conftest
`trained_student`). A stand-in is kept only where a test needs a scripted answer that a real
model cannot be made to give on demand, e.g. a prediction flagged "between stages"; such a test
says so in its docstring.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from sos_core.inference.prediction import Prediction
from sos_core.stages import SOS_4_STAGE


class StubPredictor:
    """Test double for `sos_core.inference.Predictor`: a fixed, scripted answer for 2-D images."""

    def __init__(self, stage: int = 1, flags: tuple[str, ...] = ()) -> None:
        self.stage, self.flags = stage, flags
        self.card = SimpleNamespace(version="test-1.0+abc123", stage_names=SOS_4_STAGE.names)
        self.calls = 0

    def predict(self, study: Any, slice: int | None = None) -> Prediction:  # noqa: A002
        self.calls += 1
        rows, cols = study.pixels.shape[-2:]
        probs = [0.05, 0.05, 0.05, 0.05]
        probs[self.stage] = 0.85
        cam = np.zeros((rows, cols), np.float32)
        cam[rows // 4 : rows // 2, cols // 4 : cols // 2] = 1.0
        return Prediction(
            stage=self.stage,
            stage_name=SOS_4_STAGE.names[self.stage],
            probabilities=tuple(probs),
            model_version=self.card.version,
            device="cpu",
            cam=cam if study.kind == "image" else None,
            box=(cols / 4, rows / 4, cols / 2, rows / 2),
            slice_index=None if study.kind == "image" else slice,
            flags=self.flags,
            messages=tuple(f"message for {f}" for f in self.flags),
            seconds=0.01,
        )
