"""The student's second look: a zoomed crop around its own Grad-CAM peak, read by the same network.

A 384 px student sees the synchondrosis about 0.8x as large as the teacher sees it in an
expert crop, and the stage hangs on a gap one or two pixels wide. On cephalograms the full-image
student read 84 % where its teacher read 89 % of crops (RESULTS.md, "the shipped recipe over
three seeds"). So a zoomed student reads twice: the full image gives the stage's evidence and
the map; a square around the map's peak, resampled larger from the same model input, is read
again; the stage comes from both readings' logits. The map shown to the expert stays the full
image's. Training teaches the crop reading with crops around the true box, jittered by about as
far as the peak falls from the box centre (`sos_core.distill.training`).

The crop pass runs BatchNorm on its running statistics (the full images'), in training as at
inference, where BatchNorm is folded into the convolutions: both passes read one network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sos_core.errors import ModelFormatError


@dataclass(frozen=True, slots=True)
class ZoomSpec:
    """How the second look is taken, stored in the student's card under preprocessing["zoom"].

    side: the SOS box's typical longer side (median over training), as a share of the input side.
    context: the crop square's side is `side x context` (room for the peak's offset).
    size: the crop's pixels per side.
    mix: the crop reading's weight in the combined logits (0 = full image only, 1 = crop only).
    """

    side: float
    context: float = 2.0
    size: int = 96
    mix: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.side < 1 and self.context > 0 and self.size > 0 and 0 <= self.mix <= 1):
            raise ModelFormatError(
                "the model card's zoom settings are out of range; reinstall the model folder."
            )

    def crop_side(self, input_size: int) -> float:
        """The crop square's side in input pixels."""
        return self.side * self.context * input_size

    def to_card(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_preprocessing(cls, preprocessing: Mapping[str, Any]) -> ZoomSpec | None:
        """The card's zoom settings, or None for a model that reads the full image once."""
        raw = preprocessing.get("zoom")
        if raw is None:
            return None
        try:
            values = {
                "side": float(raw["side"]),
                "context": float(raw["context"]),
                "size": int(raw["size"]),
                "mix": float(raw["mix"]),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(
                "the model card's zoom settings are incomplete; reinstall the model folder."
            ) from exc
        return cls(**values)


def peak_centres(cams: torch.Tensor) -> torch.Tensor:
    """(N, 2) x, y of each map's maximum in input pixels (pixel centres), from (N, H, W) maps."""
    n, h, w = cams.shape
    flat = cams.reshape(n, -1).argmax(dim=1)
    ys = torch.div(flat, w, rounding_mode="floor")
    xs = flat - ys * w
    return torch.stack([xs, ys], dim=1).float() + 0.5


def zoom_crops(x: torch.Tensor, centres: torch.Tensor, side: float, size: int) -> torch.Tensor:
    """(N, C, size, size) bilinear crops of `x` (N, C, H, W): squares of `side` input pixels
    centred on `centres` (N, 2; x, y in pixels, 0 at the image's left/top edge). Outside the
    image reads 0, the letterbox's black."""
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=x.device)
    theta[:, 0, 0] = side / w
    theta[:, 1, 1] = side / h
    theta[:, 0, 2] = 2 * centres[:, 0].to(x.device, torch.float32) / w - 1
    theta[:, 1, 2] = 2 * centres[:, 1].to(x.device, torch.float32) / h - 1
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    crops = F.grid_sample(x.float(), grid, padding_mode="zeros", align_corners=False)
    return crops.to(x.dtype)


@contextlib.contextmanager
def batchnorm_frozen(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers read their running statistics inside the block, whatever the mode.

    The crop pass during training: its statistics would differ from the full images', and at
    inference BatchNorm is folded with the full images' statistics. Restores each layer's mode.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in layers]
    for m in layers:
        m.train(False)
    try:
        yield
    finally:
        for m, mode in zip(layers, modes, strict=True):
            m.train(mode)


def combine(full_logits: torch.Tensor, crop_logits: torch.Tensor, mix: float) -> torch.Tensor:
    """The stage's logits from both readings: a weighted mean of the two logit vectors."""
    return (1 - mix) * full_logits.float() + mix * crop_logits.float()


def crop_reading(
    model: nn.Module, x: torch.Tensor, centres: torch.Tensor, side: float, size: int
) -> torch.Tensor:
    """Logits of `model` on crops of `x` around `centres`, BatchNorm on running statistics.
    Gradients flow (training calls it); `second_look` is the inference form."""
    crops = zoom_crops(x, centres, side, size)
    if x.is_contiguous(memory_format=torch.channels_last):
        crops = crops.contiguous(memory_format=torch.channels_last)
    with batchnorm_frozen(model):
        return model(crops)


@torch.no_grad()
def second_look(
    model: nn.Module, x: torch.Tensor, cams: torch.Tensor, spec: ZoomSpec
) -> torch.Tensor:
    """The crop reading's logits for inputs `x` whose full-image maps are `cams` (N, H, W)."""
    return crop_reading(model, x, peak_centres(cams), spec.crop_side(x.shape[-1]), spec.size)
