"""Inference: the Predictor and its Prediction record (torch stays in predictor modules)."""

from __future__ import annotations

from sos_core.inference.prediction import FLAG_NAMES, Prediction

__all__ = ["FLAG_NAMES", "Prediction"]
