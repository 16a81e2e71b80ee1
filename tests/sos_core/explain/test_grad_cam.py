"""Closed-form Grad-CAM equals the hook-based reference; the inference path is one pass."""

from __future__ import annotations

import gc
import tracemalloc
import warnings

import pytest
import torch
from torch import nn

from sos_core.explain.grad_cam import GradCam, HookGradCam, class_activation_map, normalise_maps
from sos_core.models.cam_net import CamNet, StageSpec
from sos_core.models.registry import create_model

ARCHITECTURES = [
    ("student", {}, 96),
    ("student", {"output_stride": 32, "act": "relu"}, 128),
    ("teacher", {}, 64),
    ("resnet", {"width": 0.25, "depths": (1, 1, 1, 1)}, 96),
]


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics, so maps differ between classes and seeds."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.normal_(1, 0.2, generator=gen)
                m.bias.normal_(0, 0.2, generator=gen)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 1, generator=gen)
    return model.eval()


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def test_closed_form_by_hand() -> None:
    # A: 2 channels on 1 x 2 cells; w for class 1 = (1, -2)
    feats = torch.tensor([[[[1.0, 3.0]], [[0.0, 1.0]]]])  # 1 x 2 x 1 x 2
    weight = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    cam = class_activation_map(feats, weight, torch.tensor([1]))
    # Σ_k w_k A_k = (1, 3 - 2) = (1, 1); / (h·w = 2) → (0.5, 0.5)
    assert cam.tolist() == [[[0.5, 0.5]]]
    weight = torch.tensor([[0.0, 0.0], [-1.0, 1.0]])  # (-1, -2): ReLU → zeros
    assert class_activation_map(feats, weight, torch.tensor([1])).abs().sum() == 0
    unscaled = class_activation_map(
        feats, torch.tensor([[1.0, 1.0]]), torch.tensor([0]), scale=False
    )
    assert unscaled.tolist() == [[[1.0, 4.0]]]


@pytest.mark.parametrize(("name", "kwargs", "size"), ARCHITECTURES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_equals_hook_grad_cam(
    name: str, kwargs: dict[str, object], size: int, seed: int
) -> None:
    torch.manual_seed(seed)
    model = _randomised(create_model(name, **kwargs), seed)
    x = torch.rand(3, 1, size, size)
    classes = torch.tensor([0, 2, 3])
    with torch.no_grad():
        feats, _ = model.forward_with_features(x)
        closed = class_activation_map(feats, model.head_weight, classes)
    with HookGradCam(model, model.target_layer) as reference:
        hooked = reference(x, classes)
    assert hooked.shape == closed.shape
    for i in range(3):
        if hooked[i].abs().sum() > 0:  # a map that ReLU zeroes everywhere has no correlation
            assert _corr(closed[i], hooked[i]) > 0.999
    # with the 1/(h·w) scale the two are equal, not only proportional
    torch.testing.assert_close(closed, hooked, rtol=1e-4, atol=1e-5 * float(hooked.abs().max()))
    assert float(hooked.abs().sum()) > 0  # the comparison was not between empty maps


def test_closed_form_is_differentiable() -> None:
    torch.manual_seed(0)
    model = create_model("student").train()
    x = torch.rand(2, 1, 64, 64)
    feats, logits = model.forward_with_features(x)
    cam = class_activation_map(feats, model.head_weight, torch.tensor([1, 2]))
    assert cam.requires_grad
    (cam.sum() + logits.sum()).backward()
    assert model.classifier.weight.grad is not None
    first_conv = model.features.stem[0].weight
    assert first_conv.grad is not None
    assert first_conv.grad.abs().sum() > 0


def test_inference_path_one_forward_pass() -> None:
    torch.manual_seed(0)
    model = _randomised(create_model("student"), 5).train()  # mode must come back as train
    calls: list[int] = []
    handle = model.features.register_forward_hook(lambda *_: calls.append(1))
    try:
        result = GradCam(model, temperature=2.0)(torch.rand(2, 1, 128, 96))
    finally:
        handle.remove()
    assert calls == [1]
    assert model.training
    assert result.cam.shape == (2, 128, 96)
    assert result.cam.dtype == torch.float32
    assert float(result.cam.min()) >= 0
    assert float(result.cam.max()) <= 1
    assert result.probabilities.shape == (2, 4)
    torch.testing.assert_close(result.probabilities.sum(1), torch.ones(2))
    torch.testing.assert_close(
        result.probabilities, torch.softmax(result.logits / 2.0, dim=1), rtol=1e-5, atol=1e-6
    )
    assert torch.equal(result.classes, result.logits.argmax(1))


def test_inference_path_matches_reference_at_input_resolution() -> None:
    torch.manual_seed(1)
    model = _randomised(create_model("teacher"), 7)
    x = torch.rand(2, 1, 64, 64)
    classes = torch.tensor([1, 3])
    result = GradCam(model)(x, classes)
    with HookGradCam(model, model.target_layer) as reference:
        maps = reference(x, classes)
    up = nn.functional.interpolate(maps[:, None], size=(64, 64), mode="bilinear")[:, 0]
    torch.testing.assert_close(result.cam, normalise_maps(up), rtol=1e-4, atol=1e-5)


def test_hook_cam_leaves_parameter_grads_untouched() -> None:
    model = _randomised(create_model("teacher"), 3)
    with HookGradCam(model, model.target_layer) as reference:
        reference(torch.rand(1, 1, 64, 64))
    assert all(p.grad is None for p in model.parameters())


def test_released_hook_cam_refuses_and_release_is_idempotent() -> None:
    model = create_model("teacher").eval()
    cam = HookGradCam(model, model.target_layer)
    cam.release()
    cam.release()
    with pytest.raises(RuntimeError, match="released"):
        cam(torch.rand(1, 1, 64, 64))


def test_exception_inside_context_still_releases_and_propagates() -> None:
    model = create_model("teacher").eval()
    layer = model.target_layer
    with pytest.raises(ValueError, match="boom"), HookGradCam(model, layer):
        raise ValueError("boom")
    assert len(layer._forward_hooks) == 0


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance on torch's deprecated aliases warns
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def test_no_hook_or_memory_leak_over_100_iterations() -> None:
    torch.manual_seed(0)
    model = CamNet([StageSpec("ir", 16, 1, 2), StageSpec("basic", 24, 1, 2)], stem_channels=8)
    model.eval()
    layer = model.target_layer
    x = torch.rand(2, 1, 32, 32)
    with HookGradCam(model, layer) as warm:  # first call allocates caches
        warm(x)
    tensors_before = _live_tensors()
    tracemalloc.start()
    try:
        snapshot_before = tracemalloc.take_snapshot()
        for _ in range(100):
            with HookGradCam(model, layer) as cam:
                cam(x)
            assert len(layer._forward_hooks) == 0
        gc.collect()
        snapshot_after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in snapshot_after.compare_to(snapshot_before, "filename"))
    assert len(layer._forward_hooks) == 0
    assert len(layer._backward_hooks) == 0
    assert _live_tensors() <= tensors_before + 2
    assert grown < 256 * 1024  # 100 iterations; a leak of one map per call would exceed this
