"""The student's objective (DESIGN.md "The method"), as registered `nn.Module` losses.

    L = α · L_cls + β · L_dist + γ · L_attn + δ · L_outside

after Milani et al., "Knowledge Distillation Approach for SOS Fusion Staging", CVPR Workshops
2025. Every loss is found by name (`create_loss("kd", temperature=3)`, torchdistill's
`losses/registry.py` style). Maps and boxes are in the conventions of `sos_core.explain`:
maps are B x h x w on the network's feature grid, boxes are [x0, y0, x1, y1] in the network
INPUT's pixel coordinates (continuous: pixel i covers [i, i+1)).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from sos_core.errors import ParameterError, UnknownNameError

logger = logging.getLogger(__name__)

_LOSSES: dict[str, Callable[..., nn.Module]] = {}
L = TypeVar("L", bound=Callable[..., nn.Module])


def register_loss(name: str) -> Callable[[L], L]:
    """Register a loss class or factory under `name`."""

    def decorator(obj: L) -> L:
        if name in _LOSSES and _LOSSES[name] is not obj:
            raise ValueError(f"loss name {name!r} is already registered")
        _LOSSES[name] = obj
        return obj

    return decorator


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as `name`. Raises UnknownNameError for an unknown name."""
    try:
        factory = _LOSSES[name]
    except KeyError:
        raise UnknownNameError(
            f"there is no loss named {name!r}; known: {', '.join(sorted(_LOSSES))}."
        ) from None
    return factory(**kwargs)


def list_losses() -> list[str]:
    return sorted(_LOSSES)


# --- geometry: RoI-align and box coverage in plain torch (no torchvision) -------------------


def roi_align(
    maps: torch.Tensor,
    boxes: torch.Tensor,
    input_size: tuple[int, int],
    output_size: tuple[int, int],
    *,
    sampling_ratio: int = 1,
) -> torch.Tensor:
    """Bilinear RoI-align of single-channel maps: B x h x w → B x H_o x W_o, differentiable.

    Each box (input pixels, [x0, y0, x1, y1]) is split into H_o x W_o bins; each bin takes the
    mean of `sampling_ratio`² bilinear samples at its sub-bin centres (1: the bin centre).
    A map is assumed to cover the input exactly, so input x maps to grid_sample's normalised
    2x/W_in - 1 with align_corners=False (cell j's centre is at input x = (j + 0.5) · W_in / w);
    this equals torchvision's roi_align(aligned=True). Samples off the map read the nearest
    border cell (padding_mode="border"), as torchvision does within one cell of the edge.
    """
    if maps.ndim != 3 or boxes.shape != (maps.shape[0], 4):
        raise ParameterError("maps must be B x h x w and boxes B x 4.")
    if sampling_ratio < 1:
        raise ParameterError("sampling_ratio must be at least 1.")
    h_in, w_in = input_size
    h_out, w_out = output_size[0] * sampling_ratio, output_size[1] * sampling_ratio
    boxes = boxes.to(maps.dtype)
    fy = (torch.arange(h_out, device=maps.device, dtype=maps.dtype) + 0.5) / h_out
    fx = (torch.arange(w_out, device=maps.device, dtype=maps.dtype) + 0.5) / w_out
    xs = boxes[:, 0:1] + fx[None, :] * (boxes[:, 2:3] - boxes[:, 0:1])  # B x W_out, input px
    ys = boxes[:, 1:2] + fy[None, :] * (boxes[:, 3:4] - boxes[:, 1:2])  # B x H_out
    gx = (2 * xs / w_in - 1)[:, None, :].expand(-1, h_out, -1)
    gy = (2 * ys / h_in - 1)[:, :, None].expand(-1, -1, w_out)
    grid = torch.stack((gx, gy), dim=-1)  # B x H_out x W_out x (x, y)
    out = F.grid_sample(
        maps[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    if sampling_ratio > 1:
        out = F.avg_pool2d(out, sampling_ratio)
    return out[:, 0]


def box_coverage(
    boxes: torch.Tensor, input_size: tuple[int, int], grid_size: tuple[int, int]
) -> torch.Tensor:
    """Fraction (0..1) of each grid cell's area inside each box: B x h x w.

    Cell (i, j) covers input rows [i, i+1) · H_in / h and columns [j, j+1) · W_in / w.
    """
    h_in, w_in = input_size
    h, w = grid_size
    boxes = boxes.to(torch.float32)

    def overlap(lo: torch.Tensor, hi: torch.Tensor, n: int, extent: int) -> torch.Tensor:
        edges = torch.arange(n + 1, device=boxes.device, dtype=torch.float32) * (extent / n)
        inter = torch.minimum(hi[:, None], edges[None, 1:]) - torch.maximum(
            lo[:, None], edges[None, :-1]
        )
        return inter.clamp_min(0) / (extent / n)

    cov_y = overlap(boxes[:, 1], boxes[:, 3], h, h_in)
    cov_x = overlap(boxes[:, 0], boxes[:, 2], w, w_in)
    return cov_y[:, :, None] * cov_x[:, None, :]


def _normalise(maps: torch.Tensor, how: str, eps: float) -> torch.Tensor:
    flat = maps.flatten(1)
    denom = flat.amax(dim=1) if how == "max" else flat.sum(dim=1)
    return maps / denom.clamp_min(eps).view(-1, 1, 1)


# --- the losses -------------------------------------------------------------------------------


@register_loss("cls")
class ClassificationLoss(nn.Module):
    """L_cls = -1/B Σ_b log softmax(z_b)[y_b] (cross-entropy, optional label smoothing)."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ParameterError("label smoothing must be at least 0 and below 1.")
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels.long(), label_smoothing=self.label_smoothing)


@register_loss("kd")
class DistillationLoss(nn.Module):
    """L_dist = T² · 1/B Σ_b KL(softmax(t_b / T) ‖ softmax(s_b / T)).

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015; T² keeps the
    gradient scale independent of T. T = 3 as in Milani et al. 2025. "batchmean" reduction (the
    KL summed over classes, averaged over the batch). The teacher logits are detached: the
    teacher is frozen.
    """

    def __init__(self, temperature: float = 3.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ParameterError("the distillation temperature must be positive.")
        self.temperature = float(temperature)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        log_s = F.log_softmax(student_logits / t, dim=1)
        log_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
        return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * (t * t)


@register_loss("attention")
class AttentionLoss(nn.Module):
    """Pulls the student's Grad-CAM inside the SOS box towards the teacher's Grad-CAM on the crop.

    L_attn    = mean_{b,i,j} (N(RoIAlign(S_b, box_b))_ij - N(T_b)_ij)²        ("mse"; "l1": |·|)
    L_outside = mean_b Σ_ij S_b,ij · (1 - cover_b,ij) / Σ_ij S_b,ij

    S: student map of the true class (B x h x w, student feature grid); T: teacher map of the
    true class on the crop (B x H_t x W_t, detached); RoIAlign samples S over the box onto the
    teacher's H_t x W_t grid (`roi_align`); N divides each map by its maximum ("max", default,
    values in [0, 1] so the weight γ is scale-free) or its sum ("sum", a distribution);
    cover is the share of each student cell inside the box (`box_coverage`), so L_outside is
    the share of the student's attention mass outside the box, in [0, 1].
    `forward` returns L_attn + outside_weight · L_outside; `terms` returns both parts.
    After Milani et al. 2025 (attention alignment of Grad-CAM maps) and Zagoruyko & Komodakis,
    "Paying More Attention to Attention", ICLR 2017.
    """

    def __init__(
        self,
        *,
        normalise: Literal["max", "sum"] = "max",
        distance: Literal["mse", "l1"] = "mse",
        outside_weight: float = 1.0,
        sampling_ratio: int = 1,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if normalise not in ("max", "sum") or distance not in ("mse", "l1"):
            raise ParameterError("normalise must be 'max' or 'sum' and distance 'mse' or 'l1'.")
        if outside_weight < 0 or sampling_ratio < 1:
            raise ParameterError("outside_weight must be ≥ 0 and sampling_ratio ≥ 1.")
        self.normalise, self.distance = normalise, distance
        self.outside_weight, self.sampling_ratio, self.eps = outside_weight, sampling_ratio, eps

    def match(
        self,
        student_cam: torch.Tensor,
        teacher_cam: torch.Tensor,
        boxes: torch.Tensor,
        input_size: tuple[int, int],
    ) -> torch.Tensor:
        """L_attn: distance between the normalised box-sampled student map and teacher map."""
        if teacher_cam.ndim != 3 or teacher_cam.shape[0] != student_cam.shape[0]:
            raise ParameterError("teacher maps must be B x H_t x W_t, one per student map.")
        grid = (teacher_cam.shape[1], teacher_cam.shape[2])
        sampled = roi_align(
            student_cam, boxes, input_size, grid, sampling_ratio=self.sampling_ratio
        )
        s = _normalise(sampled, self.normalise, self.eps)
        t = _normalise(teacher_cam.detach().to(s.dtype), self.normalise, self.eps)
        return F.mse_loss(s, t) if self.distance == "mse" else F.l1_loss(s, t)

    def terms(
        self,
        student_cam: torch.Tensor,
        teacher_cam: torch.Tensor,
        boxes: torch.Tensor,
        input_size: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_attn, L_outside), each a scalar tensor."""
        return (
            self.match(student_cam, teacher_cam, boxes, input_size),
            self.outside_share(student_cam, boxes, input_size),
        )

    def outside_share(
        self, student_cam: torch.Tensor, boxes: torch.Tensor, input_size: tuple[int, int]
    ) -> torch.Tensor:
        """L_outside: mean share of each map's mass outside its box (0 for an all-zero map)."""
        cover = box_coverage(boxes, input_size, (student_cam.shape[1], student_cam.shape[2]))
        outside = (student_cam * (1 - cover.to(student_cam.dtype))).sum(dim=(1, 2))
        total = student_cam.sum(dim=(1, 2)).clamp_min(self.eps)
        return (outside / total).mean()

    def forward(
        self,
        student_cam: torch.Tensor,
        teacher_cam: torch.Tensor,
        boxes: torch.Tensor,
        input_size: tuple[int, int],
    ) -> torch.Tensor:
        match, outside = self.terms(student_cam, teacher_cam, boxes, input_size)
        return match + self.outside_weight * outside


@register_loss("attention_transfer")
class AttentionTransferLoss(nn.Module):
    """Baseline: activation-based attention transfer on the box (Zagoruyko & Komodakis 2017).

    Q(A) = mean_k A_k² (B x h x w, `activation_map`); q = vec(Q) / ‖vec(Q)‖₂. With the
    student's Q RoI-aligned over the box onto the teacher's grid:
    L_AT = mean_b ‖q_s,b - q_t,b‖₂². Takes the maps Q, not the features, so that the teacher's
    can be computed once per run like its Grad-CAM. Teacher detached.
    """

    def __init__(self, *, sampling_ratio: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.sampling_ratio, self.eps = sampling_ratio, eps

    @staticmethod
    def activation_map(features: torch.Tensor) -> torch.Tensor:
        """Q(A) = mean_k A_k²: B x K x h x w → B x h x w."""
        return features.pow(2).mean(dim=1)

    def forward(
        self,
        student_map: torch.Tensor,
        teacher_map: torch.Tensor,
        boxes: torch.Tensor,
        input_size: tuple[int, int],
    ) -> torch.Tensor:
        q_t = teacher_map.detach()
        q_s = roi_align(
            student_map,
            boxes,
            input_size,
            (q_t.shape[1], q_t.shape[2]),
            sampling_ratio=self.sampling_ratio,
        )
        q_s = F.normalize(q_s.flatten(1), dim=1, eps=self.eps)
        q_t = F.normalize(q_t.flatten(1).to(q_s.dtype), dim=1, eps=self.eps)
        return (q_s - q_t).pow(2).sum(dim=1).mean()


@dataclass(frozen=True, slots=True)
class ObjectiveOutput:
    """The weighted total (with graph) and each unweighted term, detached, for logging."""

    total: torch.Tensor
    terms: Mapping[str, torch.Tensor] = field(default_factory=dict)


@register_loss("distill")
class DistillObjective(nn.Module):
    """L = α · L_cls + β · L_dist + γ · L_attn + δ · L_outside (Milani et al. 2025).

    A term whose weight is 0 is neither computed nor needs its inputs, so α = 1 with the rest
    0 is the "L_cls only" baseline and β = 0 needs no teacher logits. Terms in the output are
    named "cls", "dist", "attn", "outside". The student map must be the differentiable
    Grad-CAM of the TRUE class (`sos_core.explain.class_activation_map(A, W, labels)`).
    """

    def __init__(
        self,
        *,
        alpha_cls: float = 1.0,
        beta_dist: float = 1.0,
        gamma_attn: float = 1.0,
        delta_outside: float = 0.5,
        temperature: float = 3.0,
        label_smoothing: float = 0.0,
        attention: Mapping[str, Any] | None = None,
        attn_map: Literal["gradcam", "activation"] = "gradcam",
    ) -> None:
        super().__init__()
        weights = (alpha_cls, beta_dist, gamma_attn, delta_outside)
        if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
            raise ParameterError("loss weights must be ≥ 0 and at least one must be positive.")
        self.alpha_cls, self.beta_dist = alpha_cls, beta_dist
        self.gamma_attn, self.delta_outside = gamma_attn, delta_outside
        self.cls = ClassificationLoss(label_smoothing)
        self.dist = DistillationLoss(temperature)
        self.attn = AttentionLoss(**{**dict(attention or {}), "outside_weight": 0.0})
        # "activation": the attention-transfer baseline; the maps given are Q(A), not Grad-CAM.
        if attn_map not in ("gradcam", "activation"):
            raise ParameterError("attn_map must be 'gradcam' or 'activation'.")
        self.attn_map = attn_map
        self.transfer = AttentionTransferLoss()

    def forward(
        self,
        student_logits: torch.Tensor,
        labels: torch.Tensor,
        *,
        teacher_logits: torch.Tensor | None = None,
        student_cam: torch.Tensor | None = None,
        teacher_cam: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> ObjectiveOutput:
        # Under mixed precision the terms are computed in float32: their normalising sums and
        # maxima underflow in float16 (eps = 1e-8 is 0 there), and a dead map gave 0 / 0 = NaN.
        with torch.autocast(student_logits.device.type, enabled=False):
            student_logits, teacher_logits, student_cam, teacher_cam, boxes = (
                _at_least_float32(t)
                for t in (student_logits, teacher_logits, student_cam, teacher_cam, boxes)
            )
            return self._terms(
                student_logits, labels, teacher_logits, student_cam, teacher_cam, boxes, input_size
            )

    def label_terms(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None,
    ) -> torch.Tensor:
        """α · L_cls + β · L_dist alone (float32): the loss of a reading without a map to
        steer, such as the zoomed second look (sos_core.inference.zoom)."""
        with torch.autocast(logits.device.type, enabled=False):
            logits, teacher_logits = _at_least_float32(logits), _at_least_float32(teacher_logits)
            total = logits.new_zeros(())
            if self.alpha_cls > 0:
                total = total + self.alpha_cls * self.cls(logits, labels)
            if self.beta_dist > 0:
                if teacher_logits is None:
                    raise ParameterError("the distillation term needs the teacher's logits.")
                total = total + self.beta_dist * self.dist(logits, teacher_logits)
            return total

    def _terms(
        self,
        student_logits: torch.Tensor,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        student_cam: torch.Tensor | None,
        teacher_cam: torch.Tensor | None,
        boxes: torch.Tensor | None,
        input_size: tuple[int, int] | None,
    ) -> ObjectiveOutput:
        terms: dict[str, torch.Tensor] = {}
        total = student_logits.new_zeros(())
        if self.alpha_cls > 0:
            terms["cls"] = self.cls(student_logits, labels)
            total = total + self.alpha_cls * terms["cls"]
        if self.beta_dist > 0:
            if teacher_logits is None:
                raise ParameterError("the distillation term needs the teacher's logits.")
            terms["dist"] = self.dist(student_logits, teacher_logits)
            total = total + self.beta_dist * terms["dist"]
        if self.gamma_attn > 0 or self.delta_outside > 0:
            if student_cam is None or boxes is None or input_size is None:
                raise ParameterError("the attention terms need the student map, boxes and size.")
            if self.gamma_attn > 0:
                if teacher_cam is None:
                    raise ParameterError("the attention term needs the teacher's map.")
                match = self.attn.match if self.attn_map == "gradcam" else self.transfer
                terms["attn"] = match(student_cam, teacher_cam, boxes, input_size)
                total = total + self.gamma_attn * terms["attn"]
            if self.delta_outside > 0:
                if self.attn_map != "gradcam":
                    raise ParameterError("the outside penalty needs Grad-CAM maps.")
                terms["outside"] = self.attn.outside_share(student_cam, boxes, input_size)
                total = total + self.delta_outside * terms["outside"]
        return ObjectiveOutput(total, {k: v.detach() for k, v in terms.items()})


def _at_least_float32(t: torch.Tensor | None) -> torch.Tensor | None:
    """float16/bfloat16 → float32; float32 and float64 (the hand-computed tests) unchanged."""
    if t is not None and t.is_floating_point() and t.element_size() < 4:
        return t.float()
    return t
