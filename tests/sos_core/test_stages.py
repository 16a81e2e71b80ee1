"""Stage schemes as data: names, descriptions, reference ages and the forensic age hint."""

from __future__ import annotations

import pytest

from sos_core.errors import ParameterError, UnknownNameError
from sos_core.stages import (
    SOS_4_STAGE,
    ReferenceAges,
    Stage,
    StageScheme,
    get_scheme,
    register_scheme,
    scheme_for_names,
)


def test_default_scheme_has_the_four_design_stages() -> None:
    scheme = get_scheme()
    assert scheme is SOS_4_STAGE
    assert scheme.names == ("Open", "Partially fused", "Mostly fused", "Completely fused")
    assert len(scheme) == 4
    assert "endocranial" in scheme.stage(1).description


def test_reference_ages_match_the_published_table() -> None:
    # DESIGN.md / PMC5565182 abstract: males 11.07/12.95/14.44/16.41, females 9.75/11.67/13.25/15.25
    ref = SOS_4_STAGE.references[0]
    assert ref.male == (11.07, 12.95, 14.44, 16.41)
    assert ref.female == (9.75, 11.67, 13.25, 15.25)
    assert "PMC5565182" in ref.citation
    assert "741" in ref.population


@pytest.mark.parametrize(("stage", "sex", "age"), [(0, "male", 11.07), (3, "female", 15.25)])
def test_age_hint_names_study_population_and_caveat(stage: int, sex: str, age: float) -> None:
    hint = SOS_4_STAGE.age_hint(stage, sex)  # type: ignore[arg-type]
    assert hint is not None
    assert hint.mean_age_years == age
    line = hint.sentence()
    assert f"{age:.2f} years" in line
    assert "PMC5565182" in line
    assert "American" in line
    assert "Populations differ" in line


def test_age_hint_rejects_unknown_stage_and_sex() -> None:
    with pytest.raises(ParameterError):
        SOS_4_STAGE.age_hint(4, "male")
    with pytest.raises(ParameterError):
        SOS_4_STAGE.age_hint(1, "unknown")  # type: ignore[arg-type]


def test_scheme_without_references_gives_no_hint() -> None:
    scheme = StageScheme("two", "two-stage", (Stage(0, "A", "a"), Stage(1, "B", "b")))
    assert scheme.age_hint(1, "female") is None


def test_malformed_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="indices"):
        StageScheme("bad", "bad", (Stage(1, "A", "a"),))
    with pytest.raises(ValueError, match="one value per stage"):
        StageScheme(
            "bad",
            "bad",
            (Stage(0, "A", "a"),),
            references=(ReferenceAges("c", "p", (1.0, 2.0), (1.0,)),),
        )


def test_registry_lookup_by_id_and_names() -> None:
    with pytest.raises(UnknownNameError, match="unknown stage scheme"):
        get_scheme("no-such-scheme")
    assert scheme_for_names(list(SOS_4_STAGE.names)) is SOS_4_STAGE
    assert scheme_for_names(("x", "y")) is None
    assert register_scheme(SOS_4_STAGE) is SOS_4_STAGE
    clash = StageScheme(SOS_4_STAGE.id, "other", (Stage(0, "A", "a"),))
    with pytest.raises(ParameterError):
        register_scheme(clash)
