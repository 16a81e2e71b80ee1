"""A tiny labelled dataset in the manifest format, fast enough for training tests.

Each 64 x 64 image is noise with a few distractor blobs; the stage is written only inside the
SOS box as the number of bright bars (0-3), so a crop shows it and the rest does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIZE = 64


def make_tiny_dataset(
    root: Path, n: int = 48, seed: int = 0, modalities: tuple[str, ...] = ("slice",)
) -> Path:
    """`n` cases; case i is labelled with modality `modalities[i % len(modalities)]`."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        stage = i % 4
        img = rng.normal(1000, 60, (SIZE, SIZE))
        for _ in range(3):
            y, x = rng.integers(4, SIZE - 8, 2)
            img[y : y + 4, x : x + 4] += 400
        x0, y0 = (int(v) for v in rng.integers(8, SIZE - 24, 2))
        img[y0 : y0 + 16, x0 : x0 + 16] = 900
        for b in range(stage):
            img[y0 + 2 + 4 * b : y0 + 4 + 4 * b, x0 + 2 : x0 + 14] = 1800
        name = f"images/case{i:03d}.png"
        Image.fromarray(np.clip(img, 0, 65535).astype(np.uint16)).save(root / name)
        split = "train" if i < n * 2 // 3 else ("val" if i < n * 5 // 6 else "test")
        rows.append(
            {
                "file": name,
                "case_id": f"c{i}",
                "modality": modalities[i % len(modalities)],
                "stage": stage,
                "sos_box": [x0, y0, x0 + 16, y0 + 16],
                "pixel_spacing": [1.0, 1.0],
                "split": split,
            }
        )
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_two_modality_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny images, every other case labelled a cephalogram."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny2"), modalities=("slice", "ceph"))


def teacher_config(dataset: Path, out: Path, **changes: object) -> dict:
    cfg = {
        "kind": "teacher",
        "dataset": str(dataset),
        "out": str(out),
        "model": {"key": "teacher", "kwargs": {"width": 0.25}},
        "modalities": ["slice"],
        "input_size": SIZE,
        "crop_size": 32,
        "crop_context": 1.25,
        "epochs": 3,
        "batch_size": 16,
        "lr": 3e-3,
        "device": "cpu",
        "version": "test-teacher",
    }
    cfg.update(changes)
    return cfg


def student_config(dataset: Path, out: Path, teacher: Path, **changes: object) -> dict:
    cfg = teacher_config(
        dataset,
        out,
        kind="student",
        teacher=str(teacher),
        version="test-student",
        model={"key": "student", "kwargs": {"width": 0.5, "head_channels": 64}},
    )
    cfg.update(changes)
    return cfg
