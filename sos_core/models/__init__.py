"""Models: teacher and student networks (plain torch), their registry, cards and safe files.

The names below load on first use, so `sos_core.models.card` (read by processes that never run
a model, e.g. the desktop app while its prediction process loads the network) does not import
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CamNet": "cam_net",
    "ModelCard": "card",
    "count_flops": "flops",
    "load_model": "model_file",
    "save_model": "model_file",
    "create_model": "registry",
    "list_models": "registry",
    "register_model": "registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
