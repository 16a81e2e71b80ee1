"""Grad-CAM: closed form for GAP + Linear heads, the one-pass inference path, and a reference.

For a network whose logits are y = W · GAP(A) + b with A (K x h x w) the target layer's output,
dy_c / dA_k(i, j) = w_ck / (h·w) everywhere, so Grad-CAM's channel weights (the spatial mean of
the gradient) are α_ck = w_ck / (h·w) and

    cam_c = ReLU(Σ_k α_ck · A_k) = ReLU(Σ_k w_ck · A_k) / (h·w).

No backward pass is needed (DESIGN.md "The method"). `class_activation_map` keeps the 1/(h·w)
scale by default so it equals hook-based Grad-CAM exactly, not only up to scale; any later
normalisation (to [0, 1], or per-map max/sum in the attention loss) removes it anyway.

Three entry points:

- `class_activation_map`: differentiable, batched, one class per sample; for losses.
- `GradCam`: inference; (logits, probabilities, cam at input resolution in [0, 1]) in ONE
  forward pass.
- `HookGradCam`: the textbook recipe (forward hook on the target layer, backward of the class
  score, gradient-weighted maps), kept as the reference the tests compare against and for
  models without a GAP + Linear head. It owns its hook handle; use it as a context manager.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from sos_core.errors import ParameterError

logger = logging.getLogger(__name__)


@runtime_checkable
class CamModel(Protocol):
    """What the closed-form path needs from a network (`sos_core.models.CamNet` has it)."""

    training: bool
    target_layer_name: str

    @property
    def head_weight(self) -> torch.Tensor: ...

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def train(self, mode: bool = True) -> nn.Module: ...


def class_activation_map(
    features: torch.Tensor,
    weight: torch.Tensor,
    classes: torch.Tensor,
    *,
    scale: bool = True,
) -> torch.Tensor:
    """Closed-form Grad-CAM of one class per sample; differentiable (keeps the graph).

    Parameters
    ----------
    features
        A, the target layer's output: B x K x h x w.
    weight
        The Linear head's weights W: C x K.
    classes
        B class indices (long), e.g. the true stage in training or the predicted one.
    scale
        Divide by h·w so the map equals hook-based Grad-CAM exactly (default). Without it the
        map is the plain CAM of Zhou et al. 2016, same shape, h·w times larger.

    Returns
    -------
    torch.Tensor
        B x h x w, ReLU(Σ_k w_ck A_k) [/ (h·w)], in the dtype of `features`.
    """
    if features.ndim != 4 or weight.ndim != 2 or features.shape[1] != weight.shape[1]:
        raise ParameterError("features must be B x K x h x w and weight C x K with the same K.")
    w = weight[classes.long()].to(features.dtype)  # B x K
    cam = torch.einsum("bk,bkhw->bhw", w, features)
    if scale:
        cam = cam / (features.shape[2] * features.shape[3])
    return F.relu(cam)


def normalise_maps(cams: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each map (B x ...) to [0, 1] by its own maximum; an all-zero map stays zero.

    Dividing by the max (not min-max) keeps zero meaning "no evidence" and is what the
    pointing game and the display need.
    """
    peak = cams.flatten(1).amax(dim=1).clamp_min(eps)
    return cams / peak.view(-1, *([1] * (cams.ndim - 1)))


def _upsample(cams: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(cams.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]


@dataclass(frozen=True, slots=True)
class CamResult:
    """One batch of explained predictions (all CPU/GPU tensors on the model's device).

    logits: B x C raw scores. probabilities: B x C softmax(logits / temperature).
    classes: B explained class indices (the predicted ones unless given).
    cam: B x H x W float32 in [0, 1] at the input's resolution (H, W = input height, width),
    each map divided by its own maximum.
    """

    logits: torch.Tensor
    probabilities: torch.Tensor
    classes: torch.Tensor
    cam: torch.Tensor


class GradCam:
    """Inference-time Grad-CAM for GAP + Linear models: one forward pass, no hooks, batched.

    A model in training mode is put in eval mode for the call and back afterwards (STYLE E);
    the root module's `training` flag decides. No gradient is computed. Thread affinity: any
    thread, one call at a time per model.
    """

    def __init__(self, model: CamModel, *, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ParameterError("the calibration temperature must be positive.")
        self.model = model
        self.temperature = float(temperature)

    def __call__(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> CamResult:
        """Explain a batch `x` (B x C_in x H x W) for `classes` (default: the predicted ones)."""
        # Switching modes walks every submodule (~0.5 ms for the student): only when needed.
        was_training = self.model.training
        if was_training:
            self.model.train(False)
        try:
            with torch.inference_mode():
                features, logits = self.model.forward_with_features(x)
                chosen = logits.argmax(dim=1) if classes is None else classes.to(logits.device)
                cams = class_activation_map(features, self.model.head_weight, chosen)
                cams = normalise_maps(_upsample(cams.float(), (x.shape[-2], x.shape[-1])))
                probabilities = torch.softmax(logits.float() / self.temperature, dim=1)
        finally:
            if was_training:
                self.model.train(True)
        return CamResult(logits, probabilities, chosen, cams)


class HookGradCam:
    """Reference Grad-CAM (Selvaraju et al., ICCV 2017) with a forward hook on `target_layer`.

    cam_c = ReLU(Σ_k mean_ij(∂y_c/∂A_k(i, j)) · A_k), at the layer's resolution. Gradients are
    taken with `torch.autograd.grad`, so the model's parameter `.grad` fields are untouched.
    The model is put in eval mode for each call and its mode restored. Call `release()` (or use
    `with HookGradCam(...) as cam:`) to remove the hook.
    """

    def __init__(self, model: nn.Module, target_layer: nn.Module) -> None:
        self.model = model
        self.target_layer = target_layer
        self._activation: torch.Tensor | None = None
        self._handle: torch.utils.hooks.RemovableHandle | None = target_layer.register_forward_hook(
            self._save_activation
        )

    def _save_activation(self, _module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self._activation = output

    def __call__(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """B x h x w Grad-CAM maps (unnormalised) for `classes` (default: the predicted ones)."""
        if self._handle is None:
            raise RuntimeError("this HookGradCam was released; create a new one")
        was_training = self.model.training
        self.model.train(False)
        try:
            with torch.enable_grad():
                # A leaf input that needs grad keeps the graph alive even for frozen models.
                logits = self.model(x.detach().requires_grad_(True))
                activation = self._activation
                if activation is None:
                    raise RuntimeError("the target layer was not run by the model's forward")
                chosen = logits.argmax(dim=1) if classes is None else classes.to(logits.device)
                score = logits.gather(1, chosen.view(-1, 1)).sum()
                (grads,) = torch.autograd.grad(score, activation)
            alpha = grads.mean(dim=(2, 3), keepdim=True)
            return F.relu((alpha * activation).sum(dim=1)).detach()
        finally:
            self._activation = None  # drop the graph; nothing outlives the call
            self.model.train(was_training)

    def release(self) -> None:
        """Remove the forward hook (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._activation = None

    def __enter__(self) -> HookGradCam:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()  # never swallows the exception: returns None
