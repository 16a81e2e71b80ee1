"""Fold each Conv → BatchNorm pair into one biased Conv for inference.

In eval mode a BatchNorm is a fixed per-channel affine map, so it can live in the preceding
convolution's weights and bias: y = γ (W x − μ) / √(σ² + ε) + β = W' x + b'. The student's
forward then skips 31 BatchNorm kernels (0.82x its time here, benchmarks/cpu_layout.py) for the
same outputs up to float rounding. Training keeps the unfolded model (BatchNorm learns there).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fold_batch_norm(model: nn.Module) -> nn.Module:
    """Fold, in place, every BatchNorm2d that directly follows a Conv2d in an nn.Sequential.

    The model is put in eval mode (the fold is only valid with running statistics) and
    returned. BatchNorms elsewhere are left as they are.
    """
    model.eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = seq._modules[first], seq._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq._modules[first] = _folded(conv, bn)
                seq._modules[second] = nn.Identity()
    return model


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    return fused.eval()
