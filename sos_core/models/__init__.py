"""Models: teacher and student networks (plain torch), their registry, cards and safe files."""

from __future__ import annotations

from sos_core.models.cam_net import CamNet
from sos_core.models.card import ModelCard
from sos_core.models.flops import count_flops
from sos_core.models.model_file import load_model, save_model
from sos_core.models.registry import create_model, list_models, register_model

__all__ = [
    "CamNet",
    "ModelCard",
    "count_flops",
    "create_model",
    "list_models",
    "load_model",
    "register_model",
    "save_model",
]
