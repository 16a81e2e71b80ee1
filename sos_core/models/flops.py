"""FLOP counting with torch's own `torch.utils.flop_counter` (no third-party profiler)."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

logger = logging.getLogger(__name__)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one forward pass (a multiply-add counts as 2).

    Parameters
    ----------
    model
        Any module; it is run in eval mode on a zero input and its mode is restored afterwards.
    input_shape
        Full input shape including the batch, e.g. (1, 1, 256, 256).

    Returns
    -------
    int
        Total FLOPs counted by torch for convolutions, matmuls and the like (element-wise ops,
        BN and activations are not counted, as usual for FLOP figures).
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
