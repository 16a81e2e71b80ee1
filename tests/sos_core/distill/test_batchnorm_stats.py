"""recompute_batchnorm_stats: running statistics become the plain average of the given batches."""

from __future__ import annotations

import torch
from torch import nn

from sos_core.distill.batchnorm_stats import recompute_batchnorm_stats


def _stale_bn() -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(2, momentum=0.1)
    bn.running_mean.fill_(5.0)  # statistics of some earlier network
    bn.running_var.fill_(9.0)
    return bn


def test_running_statistics_are_the_average_over_the_batches() -> None:
    bn = _stale_bn()
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 2, 3, 3, generator=g) * s + m for s, m in ((1.0, 0.0), (2.0, 3.0))]
    seen = recompute_batchnorm_stats(bn, batches)
    assert seen == 8
    # hand computed: per batch, the channel mean and the unbiased variance over N*H*W values;
    # then the plain (cumulative) average over the batches, whatever the momentum was
    means = [b.transpose(0, 1).reshape(2, -1).mean(1) for b in batches]
    variances = [b.transpose(0, 1).reshape(2, -1).var(1, unbiased=True) for b in batches]
    torch.testing.assert_close(bn.running_mean, (means[0] + means[1]) / 2)
    torch.testing.assert_close(bn.running_var, (variances[0] + variances[1]) / 2)
    assert bn.momentum == 0.1


def test_eval_mode_then_matches_the_batch_it_was_computed_on() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), _stale_bn_like(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.rand(64, 1, 12, 12) * 3 + 1
    model.train()
    with torch.no_grad():
        train_mode = model(x)
    model.eval()
    with torch.no_grad():
        stale = model(x)
    recompute_batchnorm_stats(model, [x])
    assert not model.training  # the mode is restored
    with torch.no_grad():
        fresh = model(x)
    # unbiased (stored) against biased (used in train mode) variance: N = 64*10*10 values
    torch.testing.assert_close(fresh, train_mode, atol=1e-3, rtol=1e-3)
    assert (stale - train_mode).abs().max() > 0.1


def _stale_bn_like(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    bn.running_mean.fill_(-2.0)
    bn.running_var.fill_(0.01)
    return bn


def test_no_batches_leaves_the_statistics_alone() -> None:
    bn = _stale_bn()
    assert recompute_batchnorm_stats(bn, []) == 0
    assert torch.all(bn.running_mean == 5.0)
    assert torch.all(bn.running_var == 9.0)
    assert bn.momentum == 0.1


def test_a_model_without_batchnorm_is_untouched() -> None:
    model = nn.Conv2d(1, 1, 3)
    before = model.weight.clone()
    assert recompute_batchnorm_stats(model, [torch.rand(2, 1, 5, 5)]) == 0
    assert torch.equal(model.weight, before)
