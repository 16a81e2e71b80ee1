"""Teacher and student training runs: outputs, determinism, resume, calibration."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from sos_core.distill.config import TrainConfig, config_from_dict, load_config
from sos_core.distill.training import TrainResult, describe_trained, learning_rate, train
from sos_core.errors import ParameterError
from sos_core.models.model_file import load_model
from tests.sos_core.training.conftest import student_config, teacher_config


@pytest.fixture(scope="module")
def trained_teacher(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    train(config_from_dict(teacher_config(tiny_dataset, out, epochs=6)))
    return out


def test_teacher_run_writes_model_config_and_history(trained_teacher: Path) -> None:
    model, card = load_model(trained_teacher / "model")
    assert card.architecture == "teacher"
    assert card.preprocessing["input"] == "crop"
    assert card.temperature > 0
    assert "synthetic" in card.training_data
    assert "not a clinical device" in card.intended_use
    saved = load_config(trained_teacher / "config.json")
    assert saved.kind == "teacher"
    history = json.loads((trained_teacher / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(len(history)))
    # the bars inside the box are easy: the teacher must learn them
    assert card.metrics["validation"]["accuracy"] >= 0.75


def test_card_counts_cases_apart_from_their_images(tiny_dataset: Path, tmp_path: Path) -> None:
    # Two images per case, as a phantom case gives a slice and a cephalogram.
    shutil.copytree(tiny_dataset, tmp_path / "data")
    manifest = tmp_path / "data" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.open()]
    for i, row in enumerate(rows):
        row["case_id"] = f"pair{i // 2}"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    train_rows = [r for r in rows if r["split"] == "train"]
    card = train(config_from_dict(teacher_config(tmp_path / "data", tmp_path / "t", epochs=1))).card
    assert card.training_data["train_images"] == len(train_rows)
    assert card.training_data["train_cases"] == len({r["case_id"] for r in train_rows})
    assert card.training_data["train_cases"] * 2 == len(train_rows)


def test_same_seed_gives_identical_weights(tiny_dataset: Path, tmp_path: Path) -> None:
    cards = [
        train(config_from_dict(teacher_config(tiny_dataset, tmp_path / f"r{i}", epochs=1))).card
        for i in range(2)
    ]
    assert cards[0].weights_sha256 == cards[1].weights_sha256
    other = train(
        config_from_dict(teacher_config(tiny_dataset, tmp_path / "r2", epochs=1, seed=7))
    ).card
    assert other.weights_sha256 != cards[0].weights_sha256


def test_interrupted_run_resumes_to_the_same_model(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = config_from_dict(teacher_config(tiny_dataset, tmp_path / "run", epochs=3, patience=50))
    stop = threading.Event()

    def cancel_after_two(fraction: float) -> None:
        if fraction >= 2 / 3:
            stop.set()

    first = train(cfg, progress=cancel_after_two, cancel=stop)
    assert [h["epoch"] for h in first.history] == [0, 1]
    resumed = train(cfg)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    straight = train(cfg.replace(out=str(tmp_path / "straight")))
    assert resumed.history == straight.history
    assert resumed.card.weights_sha256 == straight.card.weights_sha256


def test_learning_rate_is_cosine_per_epoch_and_ramps_per_step_in_the_warm_up() -> None:
    # Without a warm-up: 0.5 * (1 + cos(pi * epoch / epochs)) of the base, whatever the step.
    assert learning_rate(4e-3, 0, 4) == pytest.approx(4e-3)
    assert learning_rate(4e-3, 2, 4, step=3, steps_per_epoch=10) == pytest.approx(2e-3)
    assert learning_rate(4e-3, 3, 4) == pytest.approx(4e-3 * 0.5 * (1 - 0.5**0.5))
    # A two-epoch ramp with 10 steps an epoch: step 0 of epoch 0 has done 1/20 of it.
    assert learning_rate(4e-3, 0, 4, 0, 10, 2.0) == pytest.approx(4e-3 / 20)
    assert learning_rate(4e-3, 0, 4, 9, 10, 2.0) == pytest.approx(4e-3 / 2)
    # epoch 1 step 4: 1.5 of 2 epochs done, times the cosine value 0.5 * (1 + cos(pi / 4))
    cosine = 0.5 * (1 + 0.5**0.5)
    assert learning_rate(4e-3, 1, 4, 4, 10, 2.0) == pytest.approx(4e-3 * cosine * 0.75)
    assert learning_rate(4e-3, 2, 4, 0, 10, 2.0) == pytest.approx(2e-3)  # ramp over


def _stopped_after_one_epoch_and_resumed(cfg: TrainConfig, tmp_path: Path) -> TrainResult:
    """Train a two-epoch `cfg` with a stop after epoch 0, resume it, and check that it ends
    exactly where an uninterrupted run of the same config does."""
    stop = threading.Event()
    first = train(cfg, progress=lambda f: stop.set() if f >= 0.5 else None, cancel=stop)
    assert [h["epoch"] for h in first.history] == [0]
    resumed = train(cfg)
    straight = train(cfg.replace(out=str(tmp_path / "straight")))
    assert resumed.card.weights_sha256 == straight.card.weights_sha256
    assert resumed.history == straight.history
    return resumed


def test_a_warm_up_changes_the_run_and_resumes_exactly(tiny_dataset: Path, tmp_path: Path) -> None:
    base = teacher_config(tiny_dataset, tmp_path / "plain", epochs=2, patience=50)
    plain = train(config_from_dict(base))
    cfg = config_from_dict({**base, "out": str(tmp_path / "warm"), "warmup_epochs": 1.0})
    warm = _stopped_after_one_epoch_and_resumed(cfg, tmp_path)
    assert warm.card.weights_sha256 != plain.card.weights_sha256


def _parameters(model_dir: Path) -> dict[str, np.ndarray]:
    model, _ = load_model(model_dir)
    return {k: v.detach().numpy().copy() for k, v in model.named_parameters()}


def test_an_ema_run_saves_the_averaged_weights_and_resumes_exactly(
    trained_teacher: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    # Fine-tuning the trained teacher for 2 epochs: the weights move, but with a decay this
    # close to 1 their moving average stays where it started. BatchNorm statistics are
    # recomputed either way, so only the parameters are compared.
    start = _parameters(trained_teacher / "model")
    base = teacher_config(
        tiny_dataset,
        tmp_path / "plain",
        epochs=2,
        patience=50,
        init_from=str(trained_teacher / "model"),
    )
    plain = train(config_from_dict(base))
    moved = max(np.abs(v - start[k]).max() for k, v in _parameters(plain.model_dir).items())
    assert moved > 1e-3
    slow = train(config_from_dict({**base, "out": str(tmp_path / "slow"), "ema_decay": 0.999999}))
    stayed = max(np.abs(v - start[k]).max() for k, v in _parameters(slow.model_dir).items())
    assert stayed < moved * 1e-3

    cfg = config_from_dict({**base, "out": str(tmp_path / "ema"), "ema_decay": 0.9})
    ema = _stopped_after_one_epoch_and_resumed(cfg, tmp_path)
    assert ema.card.weights_sha256 not in (plain.card.weights_sha256, slow.card.weights_sha256)


def test_a_student_trains_with_scale_jitter_and_resumes_exactly(
    tiny_dataset: Path, trained_teacher: Path, tmp_path: Path
) -> None:
    base = student_config(
        tiny_dataset, tmp_path / "plain", trained_teacher / "model", epochs=2, patience=50
    )
    plain = train(config_from_dict(base))
    cfg = config_from_dict({**base, "out": str(tmp_path / "scaled"), "scale_jitter": 0.15})
    scaled = _stopped_after_one_epoch_and_resumed(cfg, tmp_path)
    assert scaled.card.weights_sha256 != plain.card.weights_sha256
    assert all(np.isfinite(h["train_loss"]) for h in scaled.history)


def test_a_student_read_at_another_size_per_modality_trains_the_same_and_is_described_at_it(
    tiny_two_modality_dataset: Path, trained_teacher: Path, tmp_path: Path
) -> None:
    import torch

    from sos_core.distill.dataset import load_cases, read_manifest, select
    from sos_core.distill.evaluation import evaluate_model_dir
    from sos_core.imaging import open_study
    from sos_core.inference.predictor import Predictor

    data = tiny_two_modality_dataset
    base = student_config(
        data, tmp_path / "own", trained_teacher / "model", epochs=2, modalities=["slice", "ceph"]
    )
    own = train(config_from_dict(base))
    cfg = {**base, "out": str(tmp_path / "read"), "read_sizes": {"ceph": 96}}
    read = train(config_from_dict(cfg))
    # Training is untouched: the same weights, only the card describes another reading.
    assert read.card.weights_sha256 == own.card.weights_sha256
    assert own.card.modality_input_sizes == {}
    assert read.card.input_size == (64, 64)  # the training size, and slices' reading size
    assert dict(read.card.modality_input_sizes) == {"ceph": (96, 96)}
    # Calibration and validation were made with cephalograms at 96 px: they differ from the
    # plain reading's, and scoring the folder as its card says gives the card's figures back.
    assert read.card.metrics["validation"]["nll"] != own.card.metrics["validation"]["nll"]
    assert read.card.metrics["review"] != own.card.metrics["review"]
    report, _ = evaluate_model_dir(read.model_dir, data, split="val")
    for key in ("accuracy", "ece", "nll", "pointing_game"):
        assert report["metrics"][key] == pytest.approx(read.card.metrics["validation"][key])
    # The Predictor reads a cephalogram at 96 px and a slice at 64 px: its probabilities are
    # the calibrated softmax of the model on each case prepared at that size, not the other.
    model, card = load_model(read.model_dir, device="cpu")
    predictor = Predictor(read.model_dir, device="cpu")

    def probabilities(record: object, size: int) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(load_cases([record], size).inputs).unsqueeze(1)
            return torch.softmax(model.eval()(x) / card.temperature, dim=1)[0].numpy()

    for record in select(read_manifest(data), "val")[:2]:
        size, other = (96, 64) if record.modality == "ceph" else (64, 96)
        got = np.asarray(predictor.predict(open_study(record.path)).probabilities)
        expected = probabilities(record, size)
        apart = np.abs(probabilities(record, other) - expected).max()
        assert np.abs(got - expected).max() < 0.05 * apart
    # The student trained without read_sizes, described afterwards for them, gets the same
    # weights and the card training with them gave.
    later = describe_trained(config_from_dict({**cfg, "out": str(tmp_path / "d")}), own.model_dir)
    assert later.card.weights_sha256 == read.card.weights_sha256
    assert later.card.modality_input_sizes == read.card.modality_input_sizes
    assert later.card.temperature == pytest.approx(read.card.temperature, rel=1e-4)
    for key, value in read.card.metrics["validation"].items():
        if isinstance(value, float):
            assert later.card.metrics["validation"][key] == pytest.approx(value, rel=1e-4, abs=1e-6)
    assert later.history == read.history
    other = {**cfg, "out": str(tmp_path / "x"), "model": {"key": "student", "kwargs": {}}}
    with pytest.raises(ParameterError, match="another model"):
        describe_trained(config_from_dict(other), own.model_dir)


def test_a_student_with_the_second_look_is_not_read_at_another_size(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    cfg = student_config(tiny_dataset, tmp_path, tmp_path, read_sizes={"slice": 96}, zoom_weight=1)
    with pytest.raises(ParameterError, match="second look"):
        config_from_dict(cfg)


def test_read_sizes_must_name_the_runs_modalities(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = student_config(tiny_dataset, tmp_path, tmp_path, read_sizes={"ceph": 96})
    with pytest.raises(ParameterError, match="'ceph'"):
        config_from_dict(cfg)  # the run learns slices only
    with pytest.raises(ParameterError, match="read_sizes"):
        config_from_dict({**cfg, "read_sizes": {"slice": 4}})


def test_student_distillation_runs_all_terms(
    tiny_dataset: Path, trained_teacher: Path, tmp_path: Path
) -> None:
    cfg = student_config(tiny_dataset, tmp_path / "student", trained_teacher / "model", epochs=2)
    result = train(config_from_dict(cfg))
    model, card = load_model(result.model_dir)
    assert card.architecture == "student"
    assert card.preprocessing["input"] == "full"
    assert "pointing_game" in card.metrics["validation"]
    assert "teacher test-teacher" in card.origin


def test_attention_transfer_baseline_trains_and_differs_from_the_method(
    tiny_dataset: Path, trained_teacher: Path, tmp_path: Path
) -> None:
    loss = {"cls": 1.0, "dist": 1.0, "attn": 2.0, "outside": 0.0}
    runs = {
        kind: train(
            config_from_dict(
                student_config(
                    tiny_dataset,
                    tmp_path / kind,
                    trained_teacher / "model",
                    epochs=1,
                    loss={**loss, "attn_map": kind},
                )
            )
        )
        for kind in ("gradcam", "activation")
    }
    assert load_config(tmp_path / "activation" / "config.json").loss.attn_map == "activation"
    assert all(np.isfinite(h["train_loss"]) for r in runs.values() for h in r.history)
    assert runs["gradcam"].card.weights_sha256 != runs["activation"].card.weights_sha256


@pytest.mark.parametrize(
    ("loss", "named"),
    [({"attn_map": "saliency"}, "saliency"), ({"attn_map": "activation"}, "outside")],
)
def test_attention_map_settings_are_checked(
    tiny_dataset: Path, tmp_path: Path, loss: dict, named: str
) -> None:
    with pytest.raises(ParameterError, match=named):
        config_from_dict(student_config(tiny_dataset, tmp_path, tmp_path, loss=loss))


def test_student_needs_a_teacher(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = teacher_config(tiny_dataset, tmp_path, kind="student")
    with pytest.raises(ParameterError, match="teacher"):
        config_from_dict(cfg)


def test_unknown_config_key_is_named(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="learning_rate"):
        config_from_dict({**teacher_config(tiny_dataset, tmp_path), "learning_rate": 1})


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("bn_stats_images", -1, "bn_stats_images"),
        ("noise_sd", 0.8, "noise_sd"),
        ("gamma_sd", -0.1, "gamma_sd"),
        ("warmup_epochs", -0.5, "warmup_epochs"),
        ("warmup_epochs", 99, "warmup_epochs"),
        ("ema_decay", 1.0, "ema_decay"),
        ("ema_decay", -0.1, "ema_decay"),
        ("read_sizes", {"slice": 96}, "read_sizes"),  # teachers read crops at their crop size
    ],
)
def test_out_of_range_augmentation_and_batchnorm_settings_are_refused(
    tiny_dataset: Path, tmp_path: Path, key: str, value: float, named: str
) -> None:
    with pytest.raises(ParameterError, match=named):
        config_from_dict(teacher_config(tiny_dataset, tmp_path, **{key: value}))


def test_dataset_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="manifest"):
        train(config_from_dict(teacher_config(tmp_path, tmp_path / "out")))


def test_whole_pixel_shift_moves_boxes_with_the_content_and_keeps_it_sharp() -> None:
    import torch

    from sos_core.distill.training import shift_whole_pixels

    x = torch.zeros(6, 1, 64, 64)
    x[:, :, 20:30, 10:24] = 1.0  # a bright block exactly inside the box
    x[:, :, 25, 10:24] = 0.0  # a one-pixel dark gap, the kind of detail a stage hangs on
    boxes = torch.tensor([[10.0, 20.0, 24.0, 30.0]]).repeat(6, 1)
    out, moved = shift_whole_pixels(x, boxes, torch.Generator().manual_seed(3), 0.1)
    assert not torch.allclose(moved, boxes)
    assert torch.equal(moved, moved.round())
    for img, (x0, y0, x1, y1) in zip(out[:, 0], moved.long().tolist(), strict=True):
        block = img[y0:y1, x0:x1]
        assert torch.equal(block, x[0, 0, 20:30, 10:24])  # moved exactly, not resampled
        assert img.sum() == block.sum()


def test_a_cpu_run_trains_in_a_retained_heap_and_gives_it_back(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    from sos_core import cpu_heap

    if not cpu_heap.heap_control_available():
        pytest.skip("malloc settings are glibc-only (Linux)")
    depths: list[int] = []
    cfg = config_from_dict(teacher_config(tiny_dataset, tmp_path / "t", epochs=2))
    train(cfg, progress=lambda _f: depths.append(cpu_heap._depth))
    assert depths == [1, 1]  # every epoch ran inside retained_heap (sos_core.cpu_heap)
    assert cpu_heap._depth == 0
