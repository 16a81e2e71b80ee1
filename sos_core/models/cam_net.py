"""CamNet: a configurable plain-torch CNN whose head is global average pooling + one Linear.

That head is what makes Grad-CAM free (DESIGN.md "The method"): for class c the map is
ReLU(Σ_k w_ck · A_k) / (H·W), where A is the output of the last feature block (the named
target layer) and w the Linear weights, so `forward_with_features` returning (A, logits) in one
pass is all that inference and the attention loss need.

Registered architectures (`sos_core.models.registry`):

- "student": MobileNet-like (full-resolution stem, inverted residuals with depthwise 3x3/5x5
  convolutions, BN, ReLU) for full images at 256 px; output stride 16 so the map is 16 x 16.
- "teacher": ResNet-like basic blocks, wider, for crops of the SOS region (64-96 px); output
  stride 8 by default so a 64 px crop gives an 8 x 8 map.
- "resnet": a ResNet-18-shaped network, for comparison only.

No torchvision: it is not available at run time.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sos_core.errors import ParameterError
from sos_core.models.registry import register_model

logger = logging.getLogger(__name__)

BlockKind = Literal["ir", "basic"]
ACTIVATIONS = ("relu", "hardswish")


def _activation(name: str) -> nn.Module:
    # Not in-place: an in-place op on a hooked activation breaks hook-based Grad-CAM.
    return nn.ReLU() if name == "relu" else nn.Hardswish()


def _round_channels(value: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor` (vector-friendly), never below it or 90 % of value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBnAct(nn.Sequential):
    """Conv (no bias) → BatchNorm → activation (or none)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
    ) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            _activation(act) if act else nn.Identity(),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1x1 expand → depthwise kxk (stride) → 1x1 project, + skip."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int, expand: float, kernel: int, act: str
    ) -> None:
        super().__init__()
        mid = _round_channels(in_ch * expand)
        layers: list[nn.Module] = []
        if mid != in_ch:
            layers.append(ConvBnAct(in_ch, mid, 1, act=act))
        layers.append(ConvBnAct(mid, mid, kernel, stride, groups=mid, act=act))
        layers.append(ConvBnAct(mid, out_ch, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.use_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.use_skip else out


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions and a (projected when needed) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, act: str) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(in_ch, out_ch, 3, stride, act=act)
        self.conv2 = ConvBnAct(out_ch, out_ch, 3, 1, act=None)
        self.shortcut: nn.Module = (
            ConvBnAct(in_ch, out_ch, 1, stride, act=None)
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )
        self.act = _activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One stage: `depth` blocks of `block` kind with `channels` outputs; the first strides."""

    block: BlockKind
    channels: int
    depth: int
    stride: int
    expand: float = 4.0
    kernel: int = 3


class CamNet(nn.Module):
    """Stem → stages → optional 1x1 head conv → global average pool → dropout → Linear.

    The target layer for Grad-CAM is `features.<last>` (the head conv if present, else the last
    stage); its output A (B x K x h x w) is the only input the closed-form Grad-CAM needs.
    Input: B x in_chans x H x W float32 (preprocessed to [0, 1], see `sos_core.preprocess`).
    """

    def __init__(
        self,
        stages: Sequence[StageSpec],
        *,
        in_chans: int = 1,
        num_classes: int = 4,
        stem_channels: int = 16,
        stem_kernel: int = 3,
        stem_stride: int = 2,
        stem_pool: bool = False,
        head_channels: int | None = None,
        act: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if stem_stride not in (1, 2):
            raise ParameterError("the stem stride must be 1 or 2.")
        layers["stem"] = ConvBnAct(in_chans, stem_channels, stem_kernel, stem_stride, act=act)
        stride = stem_stride
        if stem_pool:
            layers["stem_pool"] = nn.MaxPool2d(3, 2, 1)
            stride *= 2
        ch = stem_channels
        for i, spec in enumerate(stages, start=1):
            blocks: list[nn.Module] = []
            for j in range(spec.depth):
                s = spec.stride if j == 0 else 1
                blocks.append(
                    InvertedResidual(ch, spec.channels, s, spec.expand, spec.kernel, act)
                    if spec.block == "ir"
                    else BasicBlock(ch, spec.channels, s, act)
                )
                ch = spec.channels
            layers[f"stage{i}"] = nn.Sequential(*blocks)
            stride *= spec.stride
        if head_channels:
            layers["head"] = ConvBnAct(ch, head_channels, 1, act=act)
            ch = head_channels
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(ch, num_classes)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.num_features = ch
        self.output_stride = stride
        self.target_layer_name = f"features.{next(reversed(layers))}"
        self._init_weights()

    def _init_weights(self) -> None:
        if any(p.is_meta for p in self.parameters()):
            # Built only to read its layout (model_file.expected_layout): random init on the
            # meta device goes through torch._refs and imports torch._dynamo (~2.5 s).
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output is the Grad-CAM feature map A."""
        return self.get_submodule(self.target_layer_name)

    @property
    def head_weight(self) -> torch.Tensor:
        """The Linear weights w (num_classes x K) that weight A in the closed-form Grad-CAM."""
        return self.classifier.weight

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The target layer's output A: B x K x h x w."""
        return self.features(x)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """GAP → dropout → Linear on A."""
        return self.classifier(self.dropout(self.pool(features).flatten(1)))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, logits) in one pass; A keeps its graph so a loss can use the map."""
        features = self.forward_features(x)
        return features, self.logits_from_features(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.forward_features(x))


def _check_common(num_classes: int, in_chans: int, width: float, act: str, dropout: float) -> None:
    if not 2 <= num_classes <= 64:
        raise ParameterError("a model needs between 2 and 64 classes (stages).")
    if not 1 <= in_chans <= 4:
        raise ParameterError("a model takes 1 to 4 input channels.")
    if not 0.25 <= width <= 4.0:
        raise ParameterError("the width multiplier must be between 0.25 and 4.")
    if act not in ACTIVATIONS:
        raise ParameterError(f"unknown activation {act!r}; use one of {', '.join(ACTIVATIONS)}.")
    if not 0.0 <= dropout < 1.0:
        raise ParameterError("dropout must be at least 0 and below 1.")


@register_model("student")
def student(
    *,
    num_classes: int = 4,
    in_chans: int = 1,
    width: float = 1.0,
    output_stride: int = 16,
    head_channels: int = 384,
    act: str = "relu",
    dropout: float = 0.1,
) -> CamNet:
    """The full-image student: MobileNetV3-small-like, without squeeze-excitation.

    The stem keeps full resolution (stride 1): the stage is told by a gap one or two pixels
    wide, and a stride-2 stem followed by a stride-2 block (MobileNet's usual start) left the
    student at 69 % on native-scale crops where this start reaches 91 % (out/exp, 2026-11-26;
    benchmarks/RESULTS.md). ReLU rather than Hardswish: 90 % against 75 % on the same test.
    `output_stride` 16 keeps a 16 x 16 map at 256 px so the SOS box (about 25 px) spans
    two cells; 32 is cheaper but leaves it inside one.
    """
    _check_common(num_classes, in_chans, width, act, dropout)
    if output_stride not in (16, 32):
        raise ParameterError("the student's output stride must be 16 or 32.")
    if not 32 <= head_channels <= 2048:
        raise ParameterError("head_channels must be between 32 and 2048.")

    def c(n: int) -> int:
        return _round_channels(n * width)

    stages = [
        StageSpec("ir", c(16), 1, 2, expand=1.0, kernel=3),
        StageSpec("ir", c(24), 2, 2, expand=4.0, kernel=3),
        StageSpec("ir", c(40), 3, 2, expand=4.0, kernel=5),
        StageSpec("ir", c(64), 2, 2 if output_stride == 32 else 1, expand=4.0, kernel=5),
        StageSpec("ir", c(96), 2, 2, expand=6.0, kernel=5),
    ]
    return CamNet(
        stages,
        in_chans=in_chans,
        num_classes=num_classes,
        stem_channels=c(16),
        stem_stride=1,
        head_channels=_round_channels(head_channels * width),
        act=act,
        dropout=dropout,
    )


@register_model("teacher")
def teacher(
    *,
    num_classes: int = 4,
    in_chans: int = 1,
    width: float = 1.0,
    output_stride: int = 8,
    act: str = "relu",
    dropout: float = 0.1,
) -> CamNet:
    """The crop teacher: ResNet-like basic blocks, wider than the student, no head conv.

    Output stride 8 gives an 8 x 8 map on a 64 px crop (12 x 12 on 96 px), the grid onto which
    the student's map is RoI-aligned in the attention loss.
    """
    _check_common(num_classes, in_chans, width, act, dropout)
    if output_stride not in (8, 16):
        raise ParameterError("the teacher's output stride must be 8 or 16.")

    def c(n: int) -> int:
        return _round_channels(n * width)

    stages = [
        StageSpec("basic", c(32), 1, 1),
        StageSpec("basic", c(64), 2, 2),
        StageSpec("basic", c(128), 2, 2),
        StageSpec("basic", c(192), 2, 2 if output_stride == 16 else 1),
    ]
    return CamNet(
        stages,
        in_chans=in_chans,
        num_classes=num_classes,
        stem_channels=c(32),
        act=act,
        dropout=dropout,
    )


@register_model("resnet")
def resnet(
    *,
    num_classes: int = 4,
    in_chans: int = 1,
    width: float = 1.0,
    depths: Sequence[int] = (2, 2, 2, 2),
    act: str = "relu",
    dropout: float = 0.0,
) -> CamNet:
    """ResNet-18-shaped (7x7 stem, max-pool, 64-128-256-512 basic blocks), for comparison."""
    _check_common(num_classes, in_chans, width, act, dropout)
    depths = tuple(int(d) for d in depths)
    if len(depths) != 4 or not all(1 <= d <= 8 for d in depths):
        raise ParameterError("depths must be four numbers of blocks between 1 and 8.")
    widths = (64, 128, 256, 512)
    stages = [
        StageSpec("basic", _round_channels(w * width), d, 1 if i == 0 else 2)
        for i, (w, d) in enumerate(zip(widths, depths, strict=True))
    ]
    return CamNet(
        stages,
        in_chans=in_chans,
        num_classes=num_classes,
        stem_channels=_round_channels(64 * width),
        stem_kernel=7,
        stem_pool=True,
        act=act,
        dropout=dropout,
    )
