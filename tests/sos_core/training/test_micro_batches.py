"""Gradient accumulation over micro-batches: the whole batch's update, in smaller pieces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sos_core.distill.config import config_from_dict
from sos_core.distill.losses import DistillObjective
from sos_core.distill.training import _pieces, _TrainForward, accumulate_gradients, train
from sos_core.errors import ParameterError
from sos_core.models import create_model
from tests.sos_core.training.conftest import student_config, teacher_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_teacher(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    return train(config_from_dict(teacher_config(tiny_dataset, out, epochs=1))).model_dir


@pytest.mark.parametrize(
    ("n", "micro", "sizes"),
    [(20, 8, [7, 7, 6]), (20, None, [20]), (5, 8, [5]), (9, 3, [3, 3, 3]), (1, 1, [1])],
)
def test_pieces_cover_the_batch_once_in_near_equal_parts(
    n: int, micro: int | None, sizes: list[int]
) -> None:
    pieces = _pieces(n, micro)
    assert [len(p) for p in pieces] == sizes
    assert torch.equal(torch.cat(pieces), torch.arange(n))


def _gradients(micro: int | None, objective: DistillObjective | None) -> tuple[float, list]:
    torch.manual_seed(0)
    model = create_model("student", width=0.25)
    # Eval-mode BatchNorm uses stored statistics: nothing then couples the images of a batch,
    # so pieces must add up to the whole batch's gradient exactly (up to float rounding).
    model.eval()
    g = torch.Generator().manual_seed(1)
    n, size = 10, 64
    x = torch.rand(n, 1, size, size, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    corner = torch.rand(n, 2, generator=g) * 32
    boxes = torch.cat([corner, corner + 16], dim=1)
    loss = accumulate_gradients(
        _TrainForward(model),
        objective,
        x,
        y,
        boxes=boxes,
        teacher_logits=torch.randn(n, 4, generator=g),
        teacher_cams=torch.rand(n, 8, 8, generator=g),
        input_size=size,
        micro_batch=micro,
        device=CPU,
        channels_last=True,
        amp_dtype=None,
        scaler=torch.amp.GradScaler("cuda", enabled=False),
        ddp=False,
    )
    return loss, [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("objective", ["distill", "cross-entropy"])
@pytest.mark.parametrize("micro", [3, 4, 1])
def test_micro_batches_give_the_whole_batch_loss_and_gradient(objective: str, micro: int) -> None:
    obj = (
        DistillObjective(alpha_cls=1.0, beta_dist=1.0, gamma_attn=2.0, delta_outside=0.5)
        if objective == "distill"
        else None
    )
    whole_loss, whole = _gradients(None, obj)
    loss, pieces = _gradients(micro, obj)
    assert len(pieces) == len(whole) > 0
    assert loss == pytest.approx(whole_loss, rel=1e-5)
    for a, b in zip(pieces, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
    assert max(float(g.abs().max()) for g in whole) > 0  # the comparison is not of zeros


def test_a_student_trains_with_micro_batches(
    tiny_dataset: Path, tmp_path: Path, tiny_teacher: Path
) -> None:
    cfg = student_config(tiny_dataset, tmp_path / "s", tiny_teacher, epochs=1, micro_batch=3)
    result = train(config_from_dict(cfg))
    assert result.history[0]["train_loss"] > 0
    assert (tmp_path / "s" / "model" / "weights.safetensors").is_file()


@pytest.mark.parametrize("value", [0, -4])
def test_a_micro_batch_below_one_image_is_refused(
    tiny_dataset: Path, tmp_path: Path, value: int
) -> None:
    with pytest.raises(ParameterError, match="micro_batch"):
        config_from_dict(teacher_config(tiny_dataset, tmp_path, micro_batch=value))
