"""Choose the compute device once: argument, then $SOS_DEVICE, then CUDA → Apple MPS → CPU.

The choice is passed explicitly to everything that needs it (STYLE E), never re-detected.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from sos_core.errors import ParameterError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ENV_VAR = "SOS_DEVICE"
CHOICES = ("auto", "cpu", "cuda", "mps")


def choose_device(preference: str | None = None) -> torch.device:
    """Resolve a preference ("auto", "cpu", "cuda", "cuda:1", "mps") to an available device.

    An explicit device that is not available is an error, not a silent fallback: the user
    asked for it. "auto" (or nothing) falls back quietly.
    """
    import torch

    wanted = (preference or os.environ.get(ENV_VAR) or "auto").strip().lower()
    base = wanted.split(":", 1)[0]
    if base not in CHOICES:
        raise ParameterError(f"unknown device {wanted!r}; use one of {', '.join(CHOICES)}.")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ParameterError("no CUDA GPU is available here; choose the CPU or 'auto'.")
    if base == "mps" and not _mps_available():
        raise ParameterError("Apple MPS is not available here; choose the CPU or 'auto'.")
    return torch.device(wanted)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use the physical cores (or `threads`) for intra-op work; returns the number set."""
    import torch

    n = threads or max(
        1,
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    )
    torch.set_num_threads(n)
    return n


def prepare_for_scoring(model: torch.nn.Module) -> int:
    """Set a model up for scoring many inputs in eval mode; returns the batch size to use.

    On the CPU: channels-last (outputs unchanged) and batches of 4. A batch of 64 student
    inputs at 256 px spills its activations out of the caches: in the default layout it took
    3.9x the time per image of channels-last batches of 4 (benchmarks/train_speed.py).
    On a GPU: batches of 64, the layout as it is.
    """
    import torch

    param = next(model.parameters(), None)
    if param is not None and param.device.type == "cuda":
        return 64
    model.to(memory_format=torch.channels_last)
    return 4
