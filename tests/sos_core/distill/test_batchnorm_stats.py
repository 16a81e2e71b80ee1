"""refresh_batchnorm_stats: before each validation, BatchNorm's running statistics become those
of the current weights on a sample of training inputs, whatever the running averages were."""

from __future__ import annotations

import copy

import torch
from torch import nn

from sos_core.distill.config import ComponentConfig, TrainConfig
from sos_core.distill.training import refresh_batchnorm_stats

CPU = torch.device("cpu")


def _config(images: int, batch_size: int) -> TrainConfig:
    return TrainConfig(
        kind="teacher",
        dataset="unused",
        out="unused",
        model=ComponentConfig("teacher"),
        batch_size=batch_size,
        bn_stats_images=images,
    )


def _stale_bn(channels: int = 2) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, momentum=0.1)
    bn.running_mean.fill_(5.0)  # statistics of some earlier network
    bn.running_var.fill_(9.0)
    return bn


def _inputs(n: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 2, 3, 3, generator=g) * torch.tensor([1.0, 2.0]).view(1, 2, 1, 1) + 3


def test_statistics_are_those_of_the_sample() -> None:
    bn, x = _stale_bn(), _inputs(32)
    refresh_batchnorm_stats(bn, x, _config(32, 32), epoch=0, device=CPU, channels_last=False)
    # hand computed: the whole set in one batch, so the channel mean and the unbiased variance
    # over all 32*3*3 values, whatever the running averages were before
    per_channel = x.transpose(0, 1).reshape(2, -1)
    torch.testing.assert_close(bn.running_mean, per_channel.mean(1))
    torch.testing.assert_close(bn.running_var, per_channel.var(1, unbiased=True))
    assert bn.momentum == 0.1  # restored after the pass


def test_eval_mode_then_matches_train_mode_on_the_same_inputs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), _stale_bn(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.rand(64, 1, 12, 12) * 3 + 1
    with torch.no_grad():
        train_mode = model.train()(x)
        stale = model.eval()(x)
    refresh_batchnorm_stats(model, x, _config(64, 64), epoch=3, device=CPU, channels_last=True)
    assert not model.training  # the mode is restored
    with torch.no_grad():
        fresh = model(x)
    # unbiased (stored) against biased (used in train mode) variance: N = 64*10*10 values
    torch.testing.assert_close(fresh, train_mode, atol=1e-3, rtol=1e-3)
    assert (stale - train_mode).abs().max() > 0.1


def test_the_sample_depends_on_seed_and_epoch_only() -> None:
    x = _inputs(64)
    a, b, c = _stale_bn(), _stale_bn(), _stale_bn()
    cfg = _config(16, 8)
    refresh_batchnorm_stats(a, x, cfg, epoch=1, device=CPU, channels_last=False)
    refresh_batchnorm_stats(b, x, cfg, epoch=1, device=CPU, channels_last=False)  # another rank
    refresh_batchnorm_stats(c, x, cfg, epoch=2, device=CPU, channels_last=False)
    assert torch.equal(a.running_mean, b.running_mean)
    assert torch.equal(a.running_var, b.running_var)
    assert not torch.equal(a.running_mean, c.running_mean)


def test_zero_images_keeps_the_running_averages() -> None:
    bn = _stale_bn()
    before = copy.deepcopy(bn.state_dict())
    refresh_batchnorm_stats(bn, _inputs(8), _config(0, 8), epoch=0, device=CPU, channels_last=False)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key
