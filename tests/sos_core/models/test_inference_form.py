"""Folding BatchNorm into the convolutions changes no output, only the work done."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sos_core.models.inference_form import fold_batch_norm
from sos_core.models.registry import create_model


def _with_trained_statistics(model: nn.Module, seed: int) -> nn.Module:
    # Fresh BatchNorms are the identity map; give them statistics and affine terms a trained
    # network would have so the fold has something to get wrong.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 2 + 0.1)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
    return model.eval()


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_folded_model_gives_the_same_features_and_logits(arch: str) -> None:
    torch.manual_seed(0)
    model = _with_trained_statistics(create_model(arch), seed=1)
    x = torch.rand(2, 1, 96, 96)
    with torch.inference_mode():
        feats, logits = model.forward_with_features(x)
    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    fold_batch_norm(model)
    with torch.inference_mode():
        feats2, logits2 = model.forward_with_features(x)
    assert before > 0
    # Every BatchNorm of these networks follows a convolution, so none is left.
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    # Float rounding only: within 1e-5 of the values' range (random statistics make deep
    # activations large, so the tolerance follows their scale).
    for new, old in ((feats2, feats), (logits2, logits)):
        torch.testing.assert_close(new, old, rtol=0, atol=1e-5 * float(old.abs().max()))


def test_fold_puts_the_model_in_eval_mode() -> None:
    model = create_model("student").train()
    assert not fold_batch_norm(model).training
