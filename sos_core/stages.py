"""Stage schemes as data: id, stage names, descriptions and published reference ages.

A model card names the scheme it was trained on; the app shows names and descriptions from
here and, as a *hint* for forensic users, the published mean age of a stage with the study and
its population named and a caveat that populations differ (DESIGN.md "Stage scheme").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sos_core.errors import ParameterError, UnknownNameError

logger = logging.getLogger(__name__)

Sex = Literal["male", "female"]
SEXES: tuple[Sex, ...] = ("female", "male")

AGE_CAVEAT = (
    "Populations differ: this is a group average from one study, not an age estimate for "
    "this person."
)


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of a scheme: its index (the model's class index), name and what is seen."""

    index: int
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class ReferenceAges:
    """Published mean ages (years) per stage, in scheme order, for one studied population.

    citation: the study as a reader would look it up.
    population: who was studied, in words (size, ages, population).
    male / female: mean age in years at each stage, one per stage in scheme order.
    """

    citation: str
    population: str
    male: tuple[float, ...]
    female: tuple[float, ...]

    def mean_age(self, stage: int, sex: Sex) -> float:
        """Mean age in years at `stage` for `sex`."""
        ages = self.male if sex == "male" else self.female
        return ages[stage]


@dataclass(frozen=True, slots=True)
class AgeHint:
    """A published mean age for a stage, always carried with its study and caveat."""

    stage_name: str
    sex: Sex
    mean_age_years: float
    citation: str
    population: str
    caveat: str = AGE_CAVEAT

    def sentence(self) -> str:
        """One line naming the age, the study and the population, then the caveat."""
        sex_word = "males" if self.sex == "male" else "females"
        return (
            f"Published mean age at stage \u201c{self.stage_name}\u201d ({sex_word}): "
            f"{self.mean_age_years:.2f} years, from {self.citation}, {self.population}. "
            f"{self.caveat}"
        )


@dataclass(frozen=True, slots=True)
class StageScheme:
    """A stage scheme: stable id, stages in class-index order, optional reference ages."""

    id: str
    title: str
    stages: tuple[Stage, ...]
    references: tuple[ReferenceAges, ...] = ()

    def __post_init__(self) -> None:
        if [s.index for s in self.stages] != list(range(len(self.stages))):
            raise ValueError(f"scheme {self.id}: stage indices must be 0..n-1 in order")
        for ref in self.references:
            if len(ref.male) != len(self.stages) or len(ref.female) != len(self.stages):
                raise ValueError(f"scheme {self.id}: reference ages need one value per stage")

    def __len__(self) -> int:
        return len(self.stages)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, index: int) -> Stage:
        """The stage with class index `index`.

        Raises
        ------
        ParameterError
            If the index is outside the scheme.
        """
        if not 0 <= index < len(self.stages):
            raise ParameterError(
                f"stage {index} does not exist in the {self.title} scheme "
                f"(stages 0 to {len(self.stages) - 1})."
            )
        return self.stages[index]

    def age_hint(self, stage: int, sex: Sex) -> AgeHint | None:
        """The first reference's mean age at `stage` for `sex`, or None without references."""
        if sex not in SEXES:
            raise ParameterError(f"sex must be one of {', '.join(SEXES)}.")
        st = self.stage(stage)
        if not self.references:
            return None
        ref = self.references[0]
        return AgeHint(
            stage_name=st.name,
            sex=sex,
            mean_age_years=ref.mean_age(stage, sex),
            citation=ref.citation,
            population=ref.population,
        )


# Alhazmi A, Vargas E, Palomo JM, Hans M, Latimer B, Simpson S. Timing and rate of
# spheno-occipital synchondrosis closure and its relationship to puberty. PLoS ONE 2017;
# 12(8):e0183305 — the study DESIGN.md names (PMC5565182); ages copied from its abstract.
ALHAZMI_2017 = ReferenceAges(
    citation="Alhazmi et al., PLoS ONE 2017 (PubMed Central PMC5565182)",
    population="CBCT of 741 individuals aged 6\u201320 in a modern American population",
    male=(11.07, 12.95, 14.44, 16.41),
    female=(9.75, 11.67, 13.25, 15.25),
)

SOS_4_STAGE = StageScheme(
    id="sos-4",
    title="four-stage SOS fusion",
    stages=(
        Stage(0, "Open", "A continuous cartilage gap across the whole synchondrosis."),
        Stage(
            1,
            "Partially fused",
            "Bony bridging has begun at the endocranial (upper) border, over less than half "
            "the length.",
        ),
        Stage(
            2,
            "Mostly fused",
            "Bridging over more than half the length; a gap remains at the ectocranial "
            "(lower) border.",
        ),
        Stage(3, "Completely fused", "No gap; at most a faint scar line."),
    ),
    references=(ALHAZMI_2017,),
)

DEFAULT_SCHEME_ID = SOS_4_STAGE.id

_SCHEMES: dict[str, StageScheme] = {}


def register_scheme(scheme: StageScheme) -> StageScheme:
    """Make `scheme` findable by its id; a second scheme with the same id is refused."""
    if scheme.id in _SCHEMES and _SCHEMES[scheme.id] != scheme:
        raise ParameterError(f"a different stage scheme named {scheme.id!r} already exists.")
    _SCHEMES[scheme.id] = scheme
    return scheme


def get_scheme(scheme_id: str = DEFAULT_SCHEME_ID) -> StageScheme:
    """The registered scheme called `scheme_id`.

    Raises
    ------
    UnknownNameError
        If no scheme has that id.
    """
    try:
        return _SCHEMES[scheme_id]
    except KeyError:
        raise UnknownNameError(
            f"unknown stage scheme {scheme_id!r}; known: {', '.join(sorted(_SCHEMES))}."
        ) from None


def scheme_for_names(names: tuple[str, ...] | list[str]) -> StageScheme | None:
    """The registered scheme whose stage names equal `names` (a model card's), or None."""
    wanted = tuple(names)
    for scheme in _SCHEMES.values():
        if scheme.names == wanted:
            return scheme
    return None


register_scheme(SOS_4_STAGE)

__all__ = [
    "AGE_CAVEAT",
    "SEXES",
    "SOS_4_STAGE",
    "AgeHint",
    "ReferenceAges",
    "Sex",
    "Stage",
    "StageScheme",
    "get_scheme",
    "register_scheme",
    "scheme_for_names",
]
