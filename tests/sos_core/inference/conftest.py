"""A real (tiny) teacher and student trained once per session for inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sos_core.distill.config import config_from_dict
from sos_core.distill.training import train
from tests.sos_core.training.conftest import make_tiny_dataset, student_config, teacher_config


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset folder, student model folder)."""
    root = tmp_path_factory.mktemp("inference")
    data = make_tiny_dataset(root / "data", n=48)
    teacher = train(config_from_dict(teacher_config(data, root / "teacher", epochs=2)))
    student = train(
        config_from_dict(student_config(data, root / "student", teacher.model_dir, epochs=2))
    )
    return data, student.model_dir
