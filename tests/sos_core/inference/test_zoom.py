"""The second look: crops at the map's peak, BatchNorm frozen for the crop pass, card settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sos_core.errors import ModelFormatError
from sos_core.inference.zoom import (
    ZoomSpec,
    batchnorm_frozen,
    combine,
    peak_centres,
    second_look,
    zoom_crops,
)


def test_a_crop_of_whole_pixels_copies_them_exactly() -> None:
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    # side 2 around (3, 3): the pixels whose centres are 2.5 and 3.5, i.e. rows/columns 2..3
    crop = zoom_crops(x, torch.tensor([[3.0, 3.0]]), side=2.0, size=2)
    assert torch.equal(crop[0, 0], x[0, 0, 2:4, 2:4])


def test_a_crop_past_the_edge_reads_the_letterbox_black_and_scales_up() -> None:
    x = torch.ones(2, 1, 8, 8)
    crop = zoom_crops(x, torch.tensor([[0.0, 0.0], [4.0, 4.0]]), side=4.0, size=8)
    assert crop.shape == (2, 1, 8, 8)
    assert crop[0, 0, :4, :4].abs().max() < 0.3  # outside the image: (near) zero
    assert torch.allclose(crop[0, 0, 5:, 5:], torch.ones(3, 3))
    assert torch.allclose(crop[1], torch.ones(1, 8, 8))  # inside: the image, 2x larger


def test_peak_centres_are_pixel_centres_of_each_maximum() -> None:
    maps = torch.zeros(2, 5, 7)
    maps[0, 3, 6] = 1.0
    maps[1, 0, 1] = 0.5
    assert peak_centres(maps).tolist() == [[6.5, 3.5], [1.5, 0.5]]


def test_batchnorm_reads_its_running_statistics_inside_and_gets_its_mode_back() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    net[1].running_mean.fill_(0.3)
    net[1].running_var.fill_(2.0)
    net.train()
    x = torch.randn(3, 1, 8, 8)
    with batchnorm_frozen(net):
        inside = net(x)
    assert net.training
    assert net[1].training
    assert torch.allclose(net[1].running_mean, torch.full((4,), 0.3))  # not updated
    net.eval()
    assert torch.allclose(inside, net(x))  # the same as in eval mode


def test_combined_logits_weigh_the_crop_reading_by_mix() -> None:
    full, crop = torch.tensor([[1.0, 3.0]]), torch.tensor([[5.0, -1.0]])
    assert combine(full, crop, 0.0).tolist() == [[1.0, 3.0]]
    assert combine(full, crop, 1.0).tolist() == [[5.0, -1.0]]
    assert combine(full, crop, 0.25).tolist() == [[2.0, 2.0]]


def test_second_look_reads_the_crop_at_the_peak() -> None:
    class Probe(nn.Module):  # "logits": the crop's mean and its top-left pixel
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean(dim=(1, 2, 3)), x[:, 0, 0, 0]], dim=1)

    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 20:24, 8:12] = 1.0  # a bright 4 px square centred on (10, 22)
    cams = torch.zeros(1, 32, 32)
    cams[0, 21, 9] = 1.0  # peak at pixel (9, 21): centre (9.5, 21.5)
    spec = ZoomSpec(side=4 / 32, context=1.0, size=4)
    out = second_look(Probe(), x, cams, spec)
    # the 4 px crop around (9.5, 21.5) is half a pixel off the square: mostly bright
    assert out[0, 0] > 0.5


def test_card_settings_round_trip_and_bad_ones_are_refused_in_words() -> None:
    spec = ZoomSpec(side=0.09, context=2.0, size=96, mix=0.5)
    assert ZoomSpec.from_preprocessing({"zoom": spec.to_card()}) == spec
    assert ZoomSpec.from_preprocessing({"id": "x"}) is None
    assert spec.crop_side(384) == pytest.approx(0.09 * 2 * 384)
    with pytest.raises(ModelFormatError, match="reinstall"):
        ZoomSpec.from_preprocessing({"zoom": {"side": 0.09}})
    with pytest.raises(ModelFormatError, match="out of range"):
        ZoomSpec.from_preprocessing({"zoom": {**spec.to_card(), "side": 2.0}})
