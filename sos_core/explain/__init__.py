"""Explanations: Grad-CAM for the inference path and the differentiable training path."""

from __future__ import annotations

from sos_core.explain.grad_cam import (
    CamModel,
    CamResult,
    GradCam,
    HookGradCam,
    class_activation_map,
    normalise_maps,
)

__all__ = [
    "CamModel",
    "CamResult",
    "GradCam",
    "HookGradCam",
    "class_activation_map",
    "normalise_maps",
]
