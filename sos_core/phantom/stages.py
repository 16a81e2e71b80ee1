"""Fusion fraction <-> stage of the default scheme, and how stages, ages and fractions are drawn.

The fusion fraction is the share of the synchondrosis length (endocranial -> ectocranial) that is
bridged by bone on the head's mid-sagittal plane:

========  =======================  =====================
stage     name                     fraction
========  =======================  =====================
0         Open                     f = 0
1         Partially fused          0 < f < 0.5
2         Mostly fused             0.5 <= f < 1
3         Completely fused         f = 1
========  =======================  =====================

Ages are drawn around the published per-stage mean ages (Alhazmi et al. 2017, PMC5565182, via
`sos_core.stages`) with a wide spread, so that age (and the body size that grows with it)
correlates only weakly with the stage, as in real patients.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from sos_core.errors import ParameterError
from sos_core.stages import SOS_4_STAGE

logger = logging.getLogger(__name__)

STAGE_NAMES: tuple[str, ...] = SOS_4_STAGE.names
N_STAGES = len(STAGE_NAMES)
SEXES: tuple[str, ...] = ("female", "male")

# Spread (SD, years) of age within a stage; wide so age alone predicts the stage poorly.
AGE_SD_YEARS = 2.2
AGE_RANGE_YEARS = (6.0, 22.0)

# Fractions are drawn with a margin from the stage boundaries so that the stage stays decidable
# by eye at the default image size; any fraction can still be set explicitly.
_DRAW_RANGES = {1: (0.16, 0.42), 2: (0.58, 0.86)}


def check_stage(stage: object) -> int:
    """Return `stage` as an int, or raise ParameterError for an unknown stage."""
    if isinstance(stage, bool) or not isinstance(stage, (int, np.integer)):
        raise ParameterError(f"the stage must be a whole number from 0 to {N_STAGES - 1}.")
    if not 0 <= int(stage) < N_STAGES:
        raise ParameterError(
            f"stage {stage} does not exist; the default scheme has stages 0 to {N_STAGES - 1}."
        )
    return int(stage)


def check_fraction(fraction: object) -> float:
    """Return `fraction` as a float in [0, 1], or raise ParameterError."""
    try:
        f = float(fraction)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParameterError("the fusion fraction must be a number from 0 to 1.") from None
    if not math.isfinite(f) or not 0.0 <= f <= 1.0:
        raise ParameterError(f"the fusion fraction must lie between 0 and 1, not {f:g}.")
    return f


def stage_of_fraction(fraction: float) -> int:
    """The stage of the default scheme that a fusion fraction belongs to."""
    f = check_fraction(fraction)
    if f == 0.0:
        return 0
    if f < 0.5:
        return 1
    if f < 1.0:
        return 2
    return 3


def check_consistent(stage: int, fraction: float) -> None:
    """Raise ParameterError when `fraction` does not belong to `stage`."""
    st = check_stage(stage)
    if stage_of_fraction(fraction) != st:
        lo, hi = {0: ("0", "0"), 1: ("above 0", "below 0.5"), 2: ("0.5", "below 1")}.get(
            st, ("1", "1")
        )
        rule = f"exactly {lo}" if lo == hi else f"from {lo} to {hi}"
        raise ParameterError(
            f"a fusion fraction of {fraction:g} does not fit stage {st} "
            f"({STAGE_NAMES[st]}), which needs a fraction {rule}."
        )


def draw_fraction(stage: int, rng: np.random.Generator) -> float:
    """A fusion fraction for `stage`, away from the boundaries (see module notes)."""
    st = check_stage(stage)
    if st == 0:
        return 0.0
    if st == 3:
        return 1.0
    lo, hi = _DRAW_RANGES[st]
    return float(rng.uniform(lo, hi))


def mean_age(stage: int, sex: str) -> float:
    """Published mean age (years) at `stage` for `sex` ("female" or "male")."""
    if sex not in SEXES:
        raise ParameterError("sex must be 'female' or 'male'.")
    return SOS_4_STAGE.references[0].mean_age(check_stage(stage), sex)  # type: ignore[arg-type]


def draw_age(stage: int, sex: str, rng: np.random.Generator) -> float:
    """An age (years) for a subject at `stage`: the published mean plus a wide spread."""
    lo, hi = AGE_RANGE_YEARS
    return float(np.clip(rng.normal(mean_age(stage, sex), AGE_SD_YEARS), lo, hi))


def stage_probabilities(age: float, sex: str) -> np.ndarray:
    """P(stage | age, sex) with equal priors and the per-stage age model (natural draws)."""
    means = np.array([mean_age(s, sex) for s in range(N_STAGES)])
    logp = -0.5 * ((age - means) / AGE_SD_YEARS) ** 2
    p = np.exp(logp - logp.max())
    return p / p.sum()


def draw_stage_for_age(age: float, sex: str, rng: np.random.Generator) -> int:
    """Draw a stage given the age, for the age-driven (natural) distribution."""
    return int(rng.choice(N_STAGES, p=stage_probabilities(age, sex)))
