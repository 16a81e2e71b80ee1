"""Training the second look: crop pass in the step, zoom in the card, one reading everywhere."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from sos_core.distill.config import config_from_dict
from sos_core.distill.dataset import load_cases, read_manifest, select
from sos_core.distill.evaluation import run_model
from sos_core.distill.training import (
    ZoomCrops,
    _TrainForward,
    train,
    training_zoom_centres,
)
from sos_core.errors import ParameterError
from sos_core.imaging import open_study
from sos_core.inference.predictor import Predictor
from sos_core.inference.zoom import ZoomSpec, zoom_crops
from sos_core.models.model_file import load_model
from sos_core.models.registry import create_model
from tests.sos_core.training.conftest import SIZE, student_config, teacher_config


@pytest.fixture(scope="module")
def zoomed_student(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    teacher = tmp_path_factory.mktemp("zteacher")
    train(config_from_dict(teacher_config(tiny_dataset, teacher, epochs=4)))
    out = tmp_path_factory.mktemp("zstudent")
    cfg = student_config(
        tiny_dataset, out, teacher / "model", epochs=2, zoom_weight=1.0, zoom_size=32
    )
    return train(config_from_dict(cfg)).model_dir


def test_the_card_carries_the_zoom_with_the_median_box_side(zoomed_student: Path) -> None:
    _, card = load_model(zoomed_student)
    spec = ZoomSpec.from_preprocessing(card.preprocessing)
    assert spec is not None
    assert spec.side == pytest.approx(16 / SIZE)  # every tiny box is 16 px of a 64 px input
    assert (spec.context, spec.size, spec.mix) == (2.0, 32, 0.5)


def test_predictor_and_evaluation_read_each_image_the_same_two_ways(
    zoomed_student: Path, tiny_dataset: Path
) -> None:
    model, card = load_model(zoomed_student)
    predictor = Predictor(zoomed_student, "cpu", warm_up=False)
    assert predictor.zoom is not None
    records = select(read_manifest(tiny_dataset), "test")
    x = torch.from_numpy(load_cases(records, SIZE).inputs).unsqueeze(1)
    logits, cams = run_model(model, x, predictor.zoom)  # what `sos evaluate` scores
    expected = torch.softmax(torch.from_numpy(logits) / card.temperature, dim=1).numpy()
    got = np.array([predictor.predict(open_study(r.path)).probabilities for r in records])
    # The Predictor folds BatchNorm, so its maps differ from these by float rounding (1e-7).
    # Upsampled 16x, a map's peak is often two equal pixels; rounding may then pick the other,
    # and the crop moves by one pixel. Unambiguous peaks must agree exactly, the rest closely.
    top2 = np.sort(cams.reshape(len(cams), -1), axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5
    diff = np.abs(got - expected).max(axis=1)
    assert clear.sum() >= 2
    assert diff[clear].max() < 1e-4
    assert diff.max() < 0.05
    # and the second look changes the probabilities against the full image's alone
    model, _ = load_model(zoomed_student)
    x = torch.from_numpy(load_cases(records[:1], SIZE).inputs).unsqueeze(1)
    with torch.no_grad():
        full_only = torch.softmax(model(x) / card.temperature, dim=1)[0].numpy()
    both = np.asarray(predictor.predict(open_study(records[0].path)).probabilities)
    # (calibrated: a tiny student near chance gets a large temperature, so the change is small
    # in probability, and still far above the BatchNorm fold's rounding)
    assert not np.allclose(both, full_only, rtol=0, atol=1e-6)


def test_the_crop_pass_uses_running_statistics_and_leaves_them_alone() -> None:
    model = create_model("student", width=0.5, head_channels=64, dropout=0.0)
    x = torch.rand(4, 1, SIZE, SIZE) * torch.tensor([0.2, 0.5, 1.0, 2.0]).view(4, 1, 1, 1)
    with torch.no_grad():  # running statistics of real activations, not the initial 0 / 1
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        model.train()(x)
    net = _TrainForward(model).train()
    labels = torch.tensor([0, 1, 2, 3])
    zoom = ZoomCrops(torch.full((4, 2), 32.0), side=32.0, size=32, weight=1.0)
    plain = copy.deepcopy(net)
    _, _, crop_logits = net(x, labels, zoom)
    plain(x, labels)
    for a, b in zip(net.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the crop pass updated no BatchNorm statistics
    model.eval()
    with torch.no_grad():
        expected = model(zoom_crops(x, zoom.centres, 32.0, 32))
    assert torch.allclose(crop_logits, expected, rtol=1e-4, atol=1e-6)
    assert (expected[0] - expected[3]).abs().max() > 1e-3  # and the images do differ


def test_training_crops_centre_near_the_box_by_at_most_the_jitter() -> None:
    squares = torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 40.0, 40.0]])  # context 2
    rng = np.random.default_rng(0)
    exact = training_zoom_centres(squares, 2.0, 0.0, rng)
    assert exact.tolist() == [[20.0, 30.0], [20.0, 20.0]]
    moved = torch.stack([training_zoom_centres(squares, 2.0, 0.35, rng) for _ in range(200)])
    offset = (moved - exact).abs() / torch.tensor([[10.0], [20.0]])  # each box's side
    assert offset.max() <= 0.35 + 1e-6
    assert offset.max() > 0.3  # and it does move them


def test_zoom_settings_out_of_range_or_on_a_teacher_are_refused(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    with pytest.raises(ParameterError, match="students"):
        config_from_dict(teacher_config(tiny_dataset, tmp_path, zoom_weight=1.0))
    with pytest.raises(ParameterError, match="zoom_mix"):
        config_from_dict(
            student_config(tiny_dataset, tmp_path, tmp_path, zoom_weight=1.0, zoom_mix=1.5)
        )


def test_sos_info_says_the_model_reads_each_image_twice(
    zoomed_student: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sos_core.cli import main

    assert main(["info", "--model", str(zoomed_student)]) == 0
    assert "reads each image twice: whole, then a 32 px zoom" in capsys.readouterr().out
