"""Scale augmentation from the native image (sos_core.distill.rescale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sos_core.distill.config import config_from_dict
from sos_core.distill.dataset import LoadedCases
from sos_core.distill.rescale import random_factors, rescale_from_native
from sos_core.errors import ParameterError
from sos_core.preprocess import letterbox
from tests.sos_core.training.conftest import student_config, teacher_config


def _cases(natives: list[np.ndarray], size: int) -> LoadedCases:
    inputs, lbs = zip(*(letterbox(n, size) for n in natives), strict=True)
    n = len(natives)
    return LoadedCases(
        records=(),
        inputs=np.stack(inputs),
        boxes=np.zeros((n, 4), np.float32),
        labels=np.zeros(n, np.int64),
        natives=tuple(x.astype(np.float16) for x in natives),
        native_boxes=np.zeros((n, 4), np.float32),
        letterboxes=tuple(lbs),
    )


def _centroid(img: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.meshgrid(
        torch.arange(img.shape[0]) + 0.5, torch.arange(img.shape[1]) + 0.5, indexing="ij"
    )
    m = img.sum()
    return float((img * xs).sum() / m), float((img * ys).sum() / m)


def test_a_factor_of_one_gives_back_the_model_input() -> None:
    rng = np.random.default_rng(0)
    # A square and a wide image (letterboxed with padding), upsampled as the 384 px student is.
    cases = _cases([rng.random((64, 64), np.float32), rng.random((40, 64), np.float32)], 96)
    out, boxes = rescale_from_native(
        cases, np.arange(2), torch.tensor([[10.0, 20, 30, 40]] * 2), torch.ones(2)
    )
    # cv2's bilinear resize and grid_sample agree to float16 rounding of the stored natives.
    assert np.abs(out[:, 0].numpy() - cases.inputs).max() < 2e-3
    assert torch.equal(boxes, torch.tensor([[10.0, 20, 30, 40]] * 2))


def test_content_and_boxes_scale_together_about_the_centre() -> None:
    native = np.zeros((64, 64), np.float32)
    native[10:14, 40:46] = 1.0  # a bright block off-centre
    cases = _cases([native] * 3, 96)  # input = native * 1.5
    box = torch.tensor([[40.0, 10, 46, 14]]) * 1.5
    factors = torch.tensor([1 / 1.15, 1.0, 1.15])
    out, boxes = rescale_from_native(cases, np.zeros(3, np.int64), box.repeat(3, 1), factors)
    for img, b, z in zip(out[:, 0], boxes, factors.tolist(), strict=True):
        cx, cy = _centroid(img)
        assert cx == pytest.approx(float(b[0] + b[2]) / 2, abs=0.05)
        assert cy == pytest.approx(float(b[1] + b[3]) / 2, abs=0.05)
        assert float(b[2] - b[0]) == pytest.approx(6 * 1.5 * z, rel=1e-5)
        # The block's brightness (area x 1) scales with the square of the factor.
        assert float(img.sum()) == pytest.approx(24 * 2.25 * z * z, rel=0.02)


def test_shrinking_leaves_a_black_border_and_factors_stay_in_range() -> None:
    cases = _cases([np.ones((64, 64), np.float32)], 96)
    out, _ = rescale_from_native(
        cases, np.zeros(1, np.int64), torch.zeros(1, 4), torch.tensor([0.8])
    )
    assert out[0, 0, 0, 0] == 0
    assert out[0, 0, 48, 48] == pytest.approx(1.0)
    f = random_factors(10_000, 0.15, torch.Generator().manual_seed(1))
    assert f.min() >= 1 / 1.15 - 1e-6
    assert f.max() <= 1.15 + 1e-6
    assert f.min() < 0.88
    assert f.max() > 1.13
    assert abs(float(torch.log(f).mean())) < 0.01  # as often smaller as larger


@pytest.mark.parametrize(("kind", "value"), [("student", 0.6), ("student", -0.1), ("teacher", 0.1)])
def test_scale_jitter_settings_are_checked(
    tiny_dataset: Path, tmp_path: Path, kind: str, value: float
) -> None:
    cfg = (
        student_config(tiny_dataset, tmp_path, tmp_path, scale_jitter=value)
        if kind == "student"
        else teacher_config(tiny_dataset, tmp_path, scale_jitter=value)
    )
    with pytest.raises(ParameterError, match="scale_jitter"):
        config_from_dict(cfg)
