"""Shared fixtures for the retraining tests: a learnable tiny dataset, models and a store.

The tiny dataset of `tests/sos_core/training` encodes the stage as thin bars a small student
cannot learn in a few CPU epochs; here the stage is the brightness of a 24-pixel SOS box (a
fixed bright corner keeps the percentile normalisation from cancelling it), which a student
picks up in a few epochs. Cases alternate stages 0-3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sos_core.distill.config import config_from_dict
from sos_core.distill.training import train
from sos_core.models.card import ModelCard
from sos_core.models.model_file import save_model
from sos_core.models.registry import create_model
from sos_core.preprocess import PREPROCESSING_ID
from sos_core.retrain.dataset_import import import_labelled_dataset
from sos_core.review import ReviewStore
from sos_core.stages import get_scheme
from tests.sos_core.training.conftest import student_config, teacher_config

SIZE = 64
BOX = 24
REVIEWER = "dr-test"
STUDENT_KWARGS = {"width": 0.5, "head_channels": 64}


def make_box_dataset(root: Path, n: int, seed: int, split: str = "train") -> Path:
    """`n` cases of stage i % 4 whose SOS box brightness grows with the stage."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        stage = i % 4
        img = rng.normal(1000, 60, (SIZE, SIZE))
        img[:4, :4] = 3000
        x0, y0 = (int(v) for v in rng.integers(6, SIZE - BOX - 2, 2))
        img[y0 : y0 + BOX, x0 : x0 + BOX] += 400 * stage
        name = f"images/case{i:03d}.png"
        Image.fromarray(np.clip(img, 0, 65535).astype(np.uint16)).save(root / name)
        rows.append(
            {
                "file": name,
                "case_id": f"s{seed}c{i}",
                "modality": "slice",
                "stage": stage,
                "sos_box": [x0, y0, x0 + BOX, y0 + BOX],
                "pixel_spacing": [1.0, 1.0],
                "split": split,
            }
        )
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def random_model_dir(folder: Path, *, seed: int, version: str = "random") -> Path:
    """An untrained tiny student saved as a model folder (fast; for registry tests)."""
    import torch

    torch.manual_seed(seed)
    model = create_model("student", **STUDENT_KWARGS)
    scheme = get_scheme()
    card = ModelCard(
        name="sos-student",
        architecture="student",
        kwargs=dict(STUDENT_KWARGS),
        input_size=(SIZE, SIZE),
        stage_scheme=scheme.id,
        stage_names=scheme.names,
        version=version,
        preprocessing={"id": PREPROCESSING_ID, "input": "full", "crop_context": 1.25},
        modalities=("slice",),
        intended_use="Research and demonstration only.",
    )
    save_model(folder, model, card)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _one_cpu_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine more threads only fight (and results are
    deterministic per thread count, which the golden comparisons below rely on)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def box_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`base` (stages 0 and 1 only, train/val), `queue` (48 cases), `locked` (24 cases)."""
    root = tmp_path_factory.mktemp("box")
    base = make_box_dataset(root / "base", 32, seed=1)
    rows = [json.loads(line) for line in (base / "manifest.jsonl").read_text().splitlines()]
    kept = []
    for i, row in enumerate(rows):
        if row["stage"] < 2:
            kept.append({**row, "split": "val" if (i // 4) % 4 == 3 else "train"})
    (base / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in kept) + "\n")
    return {
        "base": base,
        "queue": make_box_dataset(root / "queue", 48, seed=2),
        "locked": make_box_dataset(root / "locked", 24, seed=3, split="test"),
    }


@pytest.fixture(scope="session")
def embedded(box_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weak embedded model: teacher and student trained on stages 0 and 1 only."""
    work = tmp_path_factory.mktemp("embedded-work")
    out = tmp_path_factory.mktemp("embedded")
    kw = {"crop_context": 1.25, "batch_size": 4, "patience": 50}
    teacher = train(
        config_from_dict(teacher_config(box_data["base"], work / "t", epochs=3, **kw)),
        resume=False,
    )
    student = train(
        config_from_dict(
            student_config(
                box_data["base"],
                work / "s",
                teacher.model_dir,
                epochs=10,
                model={"key": "student", "kwargs": dict(STUDENT_KWARGS)},
                **kw,
            )
        ),
        resume=False,
    )
    import shutil

    shutil.copytree(teacher.model_dir, out / "teacher")
    shutil.copytree(student.model_dir, out / "student")
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReviewStore]:
    with ReviewStore.open(tmp_path / "store") as s:
        yield s


def fill_store(store: ReviewStore, dataset: Path, **kw: object) -> list[str]:
    """Ingest a dataset's cases as synthetic images with one expert label each."""
    return import_labelled_dataset(store, dataset, reviewer=REVIEWER, source_kind="synthetic", **kw)
