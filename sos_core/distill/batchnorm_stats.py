"""Recompute BatchNorm's running statistics for the current weights ("precise BN").

BatchNorm's running mean and variance are an exponential average over the last ~10 training
steps, each taken with different weights. Early in training, at a high learning rate, the
weights move faster than that average follows, and in eval mode the network sees statistics
of a network that no longer exists: on the phantom's cephalogram crops a teacher whose training
loss had fallen to 0.8 still predicted one class for every validation image, for 3 to 9 epochs
(benchmarks/bn_stats.py; RESULTS.md "BatchNorm statistics"). Validation, early stopping and
the saved weights all read those statistics, so they are recomputed with the weights as they
are, from a fixed sample of training inputs, before each validation (Wu & Johnson, "Rethinking
'Batch' in BatchNorm", 2021; fvcore's `update_bn_stats`, torch's `swa_utils.update_bn`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recompute_batchnorm_stats(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every BatchNorm's running statistics to the plain average over `batches`.

    Each batch goes through `model` in train mode (batch statistics) without gradients; the
    momentum is set to None for the pass, which makes torch keep a cumulative average, and
    restored afterwards, as is the model's mode. Returns the number of inputs seen; with no
    batches (or no BatchNorm) the statistics are left as they were.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone()) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    was_training = model.training
    model.train()
    seen = 0
    try:
        for x in batches:
            model(x)
            seen += len(x)
    finally:
        for m, (momentum, mean, var) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if seen == 0:  # nothing to average: keep what there was
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
        model.train(was_training)
    return seen
