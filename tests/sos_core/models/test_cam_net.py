"""Model registry, CamNet shapes and target layer, FLOP counting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sos_core.errors import ParameterError, UnknownNameError
from sos_core.models.cam_net import CamNet, StageSpec
from sos_core.models.flops import count_flops
from sos_core.models.registry import create_model, get_model_factory, list_models, register_model


def test_registry_lists_and_builds_the_builtins() -> None:
    assert {"student", "teacher", "resnet"} <= set(list_models())
    model = create_model("student", num_classes=5)
    assert isinstance(model, CamNet)
    assert model.classifier.out_features == 5


def test_unknown_model_name_is_typed() -> None:
    with pytest.raises(UnknownNameError, match="no model architecture named 'vit'"):
        create_model("vit")
    with pytest.raises(KeyError):  # still a KeyError for generic callers
        get_model_factory("vit")


def test_registering_a_taken_name_fails() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("student")(lambda: nn.Identity())


@pytest.mark.parametrize(
    ("name", "kwargs", "size", "grid"),
    [
        ("student", {}, 256, 16),
        ("student", {"output_stride": 32}, 256, 8),
        ("teacher", {}, 64, 8),
        ("teacher", {"output_stride": 16}, 96, 6),
        ("resnet", {"width": 0.25}, 128, 4),
    ],
)
def test_forward_shapes_and_target_layer(
    name: str, kwargs: dict[str, object], size: int, grid: int
) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    x = torch.rand(2, 1, size, size)
    with torch.no_grad():
        feats, logits = model.forward_with_features(x)
        assert torch.allclose(logits, model(x), atol=1e-6)
    assert logits.shape == (2, 4)
    assert feats.shape == (2, model.num_features, grid, grid)
    assert model.output_stride == size // grid
    seen: list[torch.Tensor] = []
    handle = model.target_layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    assert torch.equal(seen[0], feats)  # the named layer's output is the map Grad-CAM uses
    assert model.head_weight.shape == (4, model.num_features)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("student", {"width": 10.0}),
        ("student", {"output_stride": 8}),
        ("student", {"act": "gelu"}),
        ("teacher", {"num_classes": 1}),
        ("resnet", {"depths": (2, 2, 2)}),
    ],
)
def test_out_of_range_settings_are_typed(name: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(ParameterError):
        create_model(name, **kwargs)


def test_count_flops_by_hand_and_restores_mode() -> None:
    # conv 1→2, 3x3, padding 1 on 4x4: 2 · (2·16 outputs) · (1·9 MACs) = 576
    # linear 2→3: 2 · 2 · 3 = 12
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 3),
    ).train()
    assert count_flops(model, (1, 1, 4, 4)) == 576 + 12
    assert model.training


def test_student_is_small_and_grouped_convs_are_counted() -> None:
    student = create_model("student")
    flops = count_flops(student, (1, 1, 256, 256))
    assert 0.1e9 < flops < 1.0e9
    dense = CamNet([StageSpec("basic", 16, 1, 1)], stem_channels=16)
    light = CamNet([StageSpec("ir", 16, 1, 1, expand=1.0)], stem_channels=16)
    assert count_flops(light, (1, 1, 32, 32)) < count_flops(dense, (1, 1, 32, 32))
