"""A candidate's calibration temperature is refitted only on enough validation cases.

A small queue leaves a handful of validation cases, on which the fitted temperature runs to the
search's lower bound (an over-confident model the gate then rejects on ECE alone); below
`min_calibration_cases` the candidate keeps its parent's temperature.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sos_core.errors import ParameterError
from sos_core.models.model_file import load_model, read_card
from sos_core.retrain import ModelRegistry, RetrainOptions, import_locked_set, retrain
from sos_core.retrain.calibration import settle_temperature
from sos_core.review import ReviewStore
from tests.sos_core.retrain.conftest import (
    REVIEWER,
    fill_store,
    make_box_dataset,
    random_model_dir,
)


def _model(folder: Path, temperature: float) -> Path:
    """A tiny model folder whose card says `temperature` (the card only; weights unchanged)."""
    random_model_dir(folder, seed=0)
    card = read_card(folder).replace(temperature=temperature)
    (folder / "model.json").write_text(card.to_json(), encoding="utf-8")
    return folder


def test_too_few_validation_cases_keep_the_parents_temperature(tmp_path: Path) -> None:
    parent = read_card(_model(tmp_path / "parent", 1.7))
    trained = _model(tmp_path / "trained", 0.07)
    weights = (trained / "weights.safetensors").read_bytes()
    record = settle_temperature(trained, parent, validation_cases=4, min_cases=30)
    assert record == {
        "temperature": 1.7,
        "source": "parent",
        "fitted": 0.07,
        "validation_cases": 4,
        "min_cases": 30,
    }
    _, card = load_model(trained)  # the SHA-256 check still passes: only the card changed
    assert card.temperature == 1.7
    assert (trained / "weights.safetensors").read_bytes() == weights


def test_enough_validation_cases_keep_the_fitted_temperature(tmp_path: Path) -> None:
    parent = read_card(_model(tmp_path / "parent", 1.7))
    trained = _model(tmp_path / "trained", 0.07)
    before = (trained / "model.json").read_bytes()
    record = settle_temperature(trained, parent, validation_cases=30, min_cases=30)
    assert (record["source"], record["temperature"]) == ("fitted", 0.07)
    assert (trained / "model.json").read_bytes() == before


def test_the_minimum_must_be_positive() -> None:
    with pytest.raises(ParameterError, match="min_calibration_cases"):
        RetrainOptions(min_calibration_cases=0)


def test_a_retrain_on_a_small_queue_keeps_the_parents_temperatures(
    box_data: dict[str, Path], embedded: Path, tmp_path: Path
) -> None:
    with ReviewStore.open(tmp_path / "store") as store:
        registry = ModelRegistry.for_store(store, embedded=embedded)
        import_locked_set(store, box_data["locked"], reviewer=REVIEWER, source_kind="synthetic")
        fill_store(store, make_box_dataset(tmp_path / "queue", 12, seed=5))
        active = registry.active()
        assert active is not None
        parent_teacher = registry.teacher_for(active)
        assert parent_teacher is not None
        options = RetrainOptions(teacher_epochs=1, student_epochs=1, batch_size=4, device="cpu")
        report = retrain(store, registry, options=options)
        assert report.status in ("promoted", "rejected"), report.message
        student = registry.version(str(report.candidate_version))
        teacher = registry.version(str(report.teacher_version))
    n_val = student.lineage["data"]["splits"]["val"]
    assert 0 < n_val < options.min_calibration_cases
    assert student.card.temperature == active.card.temperature
    assert teacher.card.temperature == parent_teacher.card.temperature
    record = student.lineage["calibration"]["student"]
    assert (record["source"], record["validation_cases"]) == ("parent", n_val)
    assert record["fitted"] != active.card.temperature  # the fit would have changed it
    assert teacher.lineage["calibration"]["source"] == "parent"
    # the locked-set evaluation behind the gate used the kept temperature
    assert student.lineage["evaluation"]["candidate"]["temperature"] == active.card.temperature
