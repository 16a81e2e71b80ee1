"""`sos train --preset`: phantom data → teacher → student warm-up → student → installed folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sos_core.distill import presets
from sos_core.errors import UnknownNameError
from sos_core.models.model_file import load_model, read_card

_MODEL = {"key": "student", "kwargs": {"width": 0.5, "head_channels": 64}}
TINY = {
    "phantom": {"count": 24, "modalities": ["slice", "ceph"], "seed": 7, "size": 128},
    "teacher": {
        "model": {"key": "teacher", "kwargs": {"width": 0.25}},
        "crop_size": 32,
        "epochs": 1,
        "batch_size": 16,
        "version": "tiny-teacher",
    },
    "student_warmup": {
        "model": _MODEL,
        "crop_size": 32,
        "crop_context": 2.7,
        "epochs": 1,
        "batch_size": 16,
        "version": "tiny-warmup",
    },
    "student": {
        "model": _MODEL,
        "input_size": 128,
        "crop_size": 32,
        "epochs": 1,
        "batch_size": 8,
        "version": "tiny-student",
    },
}


def test_unknown_preset_is_refused_by_name() -> None:
    with pytest.raises(UnknownNameError, match="default"):
        presets.get_preset("nope")


def test_preset_installs_teacher_and_warm_started_student_with_test_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(presets.PRESETS, "tiny", TINY)
    installed = presets.run_preset("tiny", work=tmp_path / "work", out=tmp_path / "models")
    assert set(installed) == {"teacher", "student"}
    for role, folder in installed.items():
        card = read_card(folder)
        load_model(folder)  # the card edit kept the weights' SHA-256 valid
        assert card.version == f"tiny-{role}"
        assert set(card.metrics["test"]) == {"all", "slice", "ceph"}
        n = {k: v["n"] for k, v in card.metrics["test"].items()}
        assert n["all"] == n["slice"] + n["ceph"] > 0
    config = json.loads((tmp_path / "work" / "student" / "config.json").read_text())
    warmup = tmp_path / "work" / "student-warmup"
    assert config["init_from"]
    assert Path(config["init_from"]).parent == warmup
    assert read_card(config["init_from"]).version == "tiny-warmup"
    assert json.loads((tmp_path / "work" / "summary.json").read_text())["student"]["all"]["n"]


def test_a_zoom_stage_fine_tunes_the_distilled_student_and_ships_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoomed = {**TINY, "student_zoom": {"epochs": 1, "zoom_weight": 1.0, "version": "tiny-zoom"}}
    monkeypatch.setitem(presets.PRESETS, "tiny-zoom", zoomed)
    installed = presets.run_preset("tiny-zoom", work=tmp_path / "work", out=tmp_path / "models")
    card = read_card(installed["student"])
    assert card.version == "tiny-zoom"
    assert card.preprocessing["zoom"]["size"] == 96
    assert set(card.metrics["test"]) == {"all", "slice", "ceph"}
    config = json.loads((tmp_path / "work" / "student-zoom" / "config.json").read_text())
    assert Path(config["init_from"]) == tmp_path / "work" / "student" / "model"
    assert config["input_size"] == 128  # the rest of the student's settings carried over
