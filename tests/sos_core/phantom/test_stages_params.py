"""Stage <-> fusion fraction, subject drawing and parameter validation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sos_core.errors import ParameterError
from sos_core.phantom.params import Pose, SosParams, draw_subject
from sos_core.phantom.stages import (
    N_STAGES,
    check_consistent,
    draw_fraction,
    mean_age,
    stage_of_fraction,
    stage_probabilities,
)


@pytest.mark.parametrize(
    ("fraction", "stage"),
    [(0.0, 0), (1e-9, 1), (0.25, 1), (0.4999999, 1), (0.5, 2), (0.75, 2), (0.9999999, 2), (1.0, 3)],
)
def test_stage_boundaries(fraction: float, stage: int) -> None:
    assert stage_of_fraction(fraction) == stage
    check_consistent(stage, fraction)


@pytest.mark.parametrize("fraction", [-0.01, 1.01, math.nan, math.inf, "half"])
def test_fraction_outside_unit_interval_is_refused(fraction: object) -> None:
    with pytest.raises(ParameterError, match="fusion fraction"):
        stage_of_fraction(fraction)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stage", "fraction"), [(0, 0.2), (1, 0.0), (1, 0.5), (2, 0.3), (2, 1.0), (3, 0.99)]
)
def test_fraction_inconsistent_with_stage_is_refused(stage: int, fraction: float) -> None:
    with pytest.raises(ParameterError, match=f"does not fit stage {stage}"):
        check_consistent(stage, fraction)
    with pytest.raises(ParameterError, match="does not fit"):
        draw_subject(1, stage=stage, fusion_fraction=fraction)


@pytest.mark.parametrize("stage", [-1, 4, 2.5, True, "1"])
def test_unknown_stage_is_refused(stage: object) -> None:
    with pytest.raises(ParameterError, match="stage"):
        draw_subject(1, stage=stage)  # type: ignore[arg-type]


def test_drawn_fractions_stay_in_their_stage() -> None:
    rng = np.random.default_rng(3)
    for stage in range(N_STAGES):
        for _ in range(200):
            assert stage_of_fraction(draw_fraction(stage, rng)) == stage


def test_draw_subject_is_deterministic_and_honours_fixed_values() -> None:
    assert draw_subject(42) == draw_subject(42)
    assert draw_subject(42) != draw_subject(43)
    p = draw_subject(7, stage=2, sex="female", age=13.0)
    assert (p.stage, p.sex, p.age) == (2, "female", 13.0)
    assert 0.5 <= p.fusion_fraction < 1.0
    q = draw_subject(7, fusion_fraction=0.3)
    assert q.stage == 1
    assert q.fusion_fraction == 0.3


def test_balanced_draw_is_roughly_uniform_and_age_correlates_weakly() -> None:
    subjects = [draw_subject(s) for s in range(800)]
    counts = np.bincount([p.stage for p in subjects], minlength=N_STAGES)
    assert counts.min() > 150
    ages = np.array([p.age for p in subjects])
    stages = np.array([p.stage for p in subjects])
    assert np.corrcoef(ages, stages)[0, 1] > 0.3  # older subjects are more fused...
    scale = np.array([p.scale_face for p in subjects])
    assert abs(np.corrcoef(scale, stages)[0, 1]) < 0.35  # ...but size says little


def test_natural_distribution_follows_age() -> None:
    assert stage_probabilities(8.0, "male")[0] > 0.6
    assert stage_probabilities(19.0, "female")[3] > 0.6
    young = [draw_subject(s, distribution="natural", age=8.0).stage for s in range(100)]
    assert np.mean(young) < 1.0
    assert mean_age(3, "male") == pytest.approx(16.41)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"seed": -1}, "seed"),
        ({"sex": "other"}, "sex"),
        ({"age": 80.0}, "age"),
        ({"scale_face": 3.0}, "scale face"),
        ({"airway": -1.0}, "airway"),
    ],
)
def test_subject_validation(change: dict[str, object], match: str) -> None:
    p = draw_subject(5)
    with pytest.raises(ParameterError, match=match):
        dataclasses.replace(p, **change)


def test_band_and_pose_validation() -> None:
    with pytest.raises(ParameterError, match="gap"):
        SosParams(fusion_fraction=0.0, gap_mm=-1.0)
    with pytest.raises(ParameterError, match="fusion fraction"):
        SosParams(fusion_fraction=1.5)
    with pytest.raises(ParameterError, match="pitch"):
        Pose(pitch_deg=90.0)
    with pytest.raises(ParameterError, match="distribution"):
        draw_subject(1, distribution="uniform")  # type: ignore[arg-type]
