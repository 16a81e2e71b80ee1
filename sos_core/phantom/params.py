"""Subject parameters of one phantom head, drawn from a seed, sex and age, and validated.

Everything a renderer needs is here or derived from `seed`: the renderers are pure functions of a
`SubjectParams`. Lengths are mm, angles degrees, ages years, intensities HU.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sos_core.errors import ParameterError
from sos_core.phantom import stages

logger = logging.getLogger(__name__)

Distribution = Literal["balanced", "natural"]

# Size at 6 years relative to 18 (cranium, face, neck). Real growth is larger; it is damped so
# that size, which a classifier can read anywhere in the image, says little about the stage.
GROWTH_AT_6 = (0.98, 0.95, 0.95)
DISTRIBUTIONS: tuple[str, ...] = ("balanced", "natural")


def _need(ok: bool, sentence: str) -> None:
    if not ok:
        raise ParameterError(sentence)


def _finite(*values: float) -> bool:
    return all(math.isfinite(float(v)) for v in values)


@dataclass(frozen=True, slots=True)
class SosParams:
    """The synchondrosis: where it is, how wide its gap is and how far it is bridged.

    fusion_fraction: bridged share of its length on the mid-sagittal plane, 0..1.
    position_mm: distance from the sella centre along the clivus axis to the band.
    gap_mm: width of the cartilage gap; tilt_deg: tilt of the band against the clivus normal.
    wave_mm: amplitude of the gap's waviness; front_jitter: irregularity of the bridging front.
    islands: osseous islands inside the open gap; scar_hu: faint scar contrast once fused.
    """

    fusion_fraction: float
    position_mm: float = 17.0
    gap_mm: float = 2.2
    tilt_deg: float = 0.0
    wave_mm: float = 0.3
    front_jitter: float = 0.04
    islands: int = 0
    scar_hu: float = 0.0

    def __post_init__(self) -> None:
        stages.check_fraction(self.fusion_fraction)
        _need(
            _finite(self.position_mm, self.gap_mm, self.tilt_deg, self.wave_mm, self.scar_hu),
            "the synchondrosis parameters must be finite numbers.",
        )
        _need(
            10.0 <= self.position_mm <= 25.0, "the synchondrosis must lie 10 to 25 mm from sella."
        )
        _need(0.5 <= self.gap_mm <= 5.0, "the synchondrosis gap must be 0.5 to 5 mm wide.")
        _need(abs(self.tilt_deg) <= 30.0, "the synchondrosis tilt must be within 30 degrees.")
        _need(0.0 <= self.wave_mm <= 2.0, "the gap waviness must be 0 to 2 mm.")
        _need(0.0 <= self.front_jitter <= 0.15, "the bridging-front jitter must be 0 to 0.15.")
        _need(0 <= self.islands <= 5, "a synchondrosis may hold 0 to 5 osseous islands.")


@dataclass(frozen=True, slots=True)
class Pose:
    """Head pose in the scanner: rotations about the head centre, then a shift (mm, LPS)."""

    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    roll_deg: float = 0.0
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        _need(
            _finite(self.pitch_deg, self.yaw_deg, self.roll_deg, *self.shift_mm),
            "the head pose must be finite.",
        )
        _need(abs(self.pitch_deg) <= 30.0, "the head pitch must be within 30 degrees.")
        _need(
            abs(self.yaw_deg) <= 15.0 and abs(self.roll_deg) <= 15.0,
            "the head yaw and roll must be within 15 degrees.",
        )
        _need(max(abs(v) for v in self.shift_mm) <= 60.0, "the head shift must be within 60 mm.")


@dataclass(frozen=True, slots=True)
class Acquisition:
    """Imaging conditions: noise, blur, artefacts and field of view.

    noise_hu: SD of the (correlated) noise; blur_mm: SD of the system blur; cupping_hu: HU lost at
    the head centre by beam hardening; brackets: orthodontic brackets (metal) on the teeth;
    streak_hu: strength of metal streaks; fov_*: cylindrical field of view (None = whole grid);
    slice_offset_mm: distance of the rendered sagittal slice from the true midline.
    """

    noise_hu: float = 40.0
    blur_mm: float = 0.55
    cupping_hu: float = 60.0
    brackets: bool = False
    streak_hu: float = 250.0
    fov_diameter_mm: float | None = None
    fov_height_mm: float | None = None
    slice_offset_mm: float = 0.0

    def __post_init__(self) -> None:
        _need(
            _finite(
                self.noise_hu, self.blur_mm, self.cupping_hu, self.streak_hu, self.slice_offset_mm
            ),
            "the acquisition parameters must be finite numbers.",
        )
        _need(0.0 <= self.noise_hu <= 500.0, "the noise level must be 0 to 500 HU.")
        _need(0.0 <= self.blur_mm <= 5.0, "the blur must be 0 to 5 mm.")
        _need(0.0 <= self.cupping_hu <= 500.0, "the cupping must be 0 to 500 HU.")
        _need(0.0 <= self.streak_hu <= 2000.0, "the streak strength must be 0 to 2000 HU.")
        for v in (self.fov_diameter_mm, self.fov_height_mm):
            _need(
                v is None or (_finite(v) and 50.0 <= v <= 500.0),
                "the field of view must be 50 to 500 mm.",
            )
        _need(
            abs(self.slice_offset_mm) <= 40.0,
            "the slice offset must be within 40 mm of the midline.",
        )


@dataclass(frozen=True, slots=True)
class SubjectParams:
    """One synthetic subject.

    scale_*: size relative to the adult reference head for the cranium (vault and cranial
    base), the face (jaws, teeth, airway) and the neck (vertebrae). The remaining fields are
    anatomical variants in plain units or as 0..1 degrees of expression.
    """

    seed: int
    sex: str
    age: float
    stage: int
    sos: SosParams
    scale_cranium: float = 1.0
    scale_face: float = 1.0
    scale_neck: float = 1.0
    clivus_half_thickness_mm: float = 6.0
    cranial_base_angle_deg: float = 130.0
    vault_thickness_mm: float = 6.5
    sphenoid_sinus: float = 0.9
    frontal_sinus: float = 0.8
    airway: float = 1.0
    adenoid: float = 0.5
    dentocentral: float = 1.0
    endplates: float = 0.5
    pose: Pose = field(default_factory=Pose)
    acq: Acquisition = field(default_factory=Acquisition)

    def __post_init__(self) -> None:
        _need(
            isinstance(self.seed, (int, np.integer)) and self.seed >= 0,
            "the seed must be a whole number of 0 or more.",
        )
        _need(self.sex in stages.SEXES, "sex must be 'female' or 'male'.")
        _need(_finite(self.age) and 3.0 <= self.age <= 30.0, "the age must be 3 to 30 years.")
        stages.check_consistent(self.stage, self.sos.fusion_fraction)
        for name in ("scale_cranium", "scale_face", "scale_neck"):
            v = getattr(self, name)
            _need(_finite(v) and 0.6 <= v <= 1.4, f"{name.replace('_', ' ')} must be 0.6 to 1.4.")
        _need(
            3.0 <= self.clivus_half_thickness_mm <= 9.0,
            "the clivus half-thickness must be 3 to 9 mm.",
        )
        _need(
            110.0 <= self.cranial_base_angle_deg <= 150.0,
            "the cranial base angle must be 110 to 150 degrees.",
        )
        _need(2.5 <= self.vault_thickness_mm <= 12.0, "the vault thickness must be 2.5 to 12 mm.")
        for name in (
            "sphenoid_sinus",
            "frontal_sinus",
            "airway",
            "adenoid",
            "dentocentral",
            "endplates",
        ):
            v = getattr(self, name)
            _need(_finite(v) and 0.0 <= v <= 1.5, f"{name.replace('_', ' ')} must be 0 to 1.5.")

    @property
    def fusion_fraction(self) -> float:
        return self.sos.fusion_fraction

    @property
    def stage_name(self) -> str:
        return stages.STAGE_NAMES[self.stage]


def subject_rng(seed: int, stream: int) -> np.random.Generator:
    """Independent random stream `stream` of subject `seed` (draws, anatomy jitter, noise)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x50A7, int(stream)]))


def _growth(age: float, child: float) -> float:
    """Size relative to adult: `child` at 6 years rising linearly to 1 at 18."""
    t = min(1.0, max(0.0, (age - 6.0) / 12.0))
    return child + (1.0 - child) * t


def draw_subject(
    seed: int,
    *,
    stage: int | None = None,
    fusion_fraction: float | None = None,
    sex: str | None = None,
    age: float | None = None,
    distribution: Distribution = "balanced",
    bracket_rate: float = 0.15,
    fov_cut_rate: float = 0.3,
) -> SubjectParams:
    """Draw a subject from `seed`; any of stage, fraction, sex and age may be fixed.

    Parameters
    ----------
    seed
        Non-negative integer; the same arguments always give the same subject.
    stage, fusion_fraction
        Fix the stage and/or the fraction (they must agree); by default the stage is drawn
        (uniformly for "balanced", from the age for "natural") and the fraction from the stage.
    sex, age
        "female"/"male" and years; drawn when None (age around the stage's published mean).
    distribution
        "balanced" (equal stages) or "natural" (age uniform over 6-20, stage from age).
    bracket_rate, fov_cut_rate
        Probabilities of orthodontic brackets and of a cut (smaller) field of view.

    Raises
    ------
    ParameterError
        For an unknown stage or distribution, a fraction outside [0, 1] or one that does not fit
        the stage, or rates outside [0, 1].
    """
    _need(
        isinstance(seed, (int, np.integer)) and seed >= 0,
        "the seed must be a whole number of 0 or more.",
    )
    _need(
        distribution in DISTRIBUTIONS,
        f"unknown distribution {distribution!r}; use balanced or natural.",
    )
    for rate in (bracket_rate, fov_cut_rate):
        _need(_finite(rate) and 0.0 <= rate <= 1.0, "rates must lie between 0 and 1.")
    rng = subject_rng(seed, 0)
    if fusion_fraction is not None:
        fusion_fraction = stages.check_fraction(fusion_fraction)
        if stage is None:
            stage = stages.stage_of_fraction(fusion_fraction)
    if stage is not None:
        stage = stages.check_stage(stage)
    sex = sex if sex is not None else str(rng.choice(stages.SEXES))
    _need(sex in stages.SEXES, "sex must be 'female' or 'male'.")
    if stage is None:
        if distribution == "natural":
            age = float(rng.uniform(6.0, 20.0)) if age is None else age
            stage = stages.draw_stage_for_age(age, sex, rng)
        else:
            stage = int(rng.integers(stages.N_STAGES))
    if age is None:
        age = stages.draw_age(stage, sex, rng)
    if fusion_fraction is None:
        fusion_fraction = stages.draw_fraction(stage, rng)
    stages.check_consistent(stage, fusion_fraction)
    male = sex == "male"
    u, n = rng.uniform, rng.normal
    sos = SosParams(
        fusion_fraction=fusion_fraction,
        position_mm=float(u(15.0, 19.0)),
        gap_mm=float(u(1.6, 2.8)),
        tilt_deg=float(np.clip(n(0.0, 6.0), -15.0, 15.0)),
        wave_mm=float(u(0.0, 0.5)),
        front_jitter=float(u(0.02, 0.06)),
        islands=int(rng.integers(1, 3)) if stage < 3 and u() < 0.2 else 0,
        scar_hu=float(u(120.0, 260.0)) if stage == 3 and u() < 0.6 else 0.0,
    )
    # Growth is gentle and individual variation large, so size says little about the stage.
    sex_f = 1.02 if male else 0.98
    cut = u() < fov_cut_rate
    return SubjectParams(
        seed=int(seed),
        sex=sex,
        age=float(age),
        stage=stage,
        sos=sos,
        scale_cranium=float(
            np.clip(_growth(age, GROWTH_AT_6[0]) * sex_f * math.exp(n(0, 0.04)), 0.8, 1.2)
        ),
        scale_face=float(
            np.clip(_growth(age, GROWTH_AT_6[1]) * sex_f * math.exp(n(0, 0.045)), 0.75, 1.25)
        ),
        scale_neck=float(
            np.clip(_growth(age, GROWTH_AT_6[2]) * sex_f * math.exp(n(0, 0.045)), 0.75, 1.25)
        ),
        clivus_half_thickness_mm=float(u(5.0, 6.8)),
        cranial_base_angle_deg=float(np.clip(n(130.0, 4.0), 120.0, 140.0)),
        vault_thickness_mm=float(u(4.5, 8.0)),
        sphenoid_sinus=float(u(0.6, 1.1)),
        frontal_sinus=float(u(0.0, 1.2)),
        airway=float(u(0.6, 1.3)),
        adenoid=float(u(0.0, 1.0)),
        dentocentral=float(u(0.0, 1.0)),
        endplates=float(u(0.0, 1.0)),
        pose=Pose(
            pitch_deg=float(np.clip(n(0.0, 4.0), -10.0, 10.0)),
            yaw_deg=float(np.clip(n(0.0, 1.5), -4.0, 4.0)),
            roll_deg=float(np.clip(n(0.0, 1.5), -4.0, 4.0)),
            shift_mm=(
                float(n(0.0, 1.0)),
                float(np.clip(n(0, 5.0), -10, 10)),
                float(np.clip(n(0, 5.0), -10, 10)),
            ),
        ),
        acq=Acquisition(
            noise_hu=float(u(25.0, 70.0)),
            blur_mm=float(u(0.45, 0.8)),
            cupping_hu=float(u(0.0, 120.0)),
            brackets=bool(u() < bracket_rate),
            streak_hu=float(u(150.0, 400.0)),
            fov_diameter_mm=float(u(165.0, 210.0)) if cut else None,
            fov_height_mm=float(u(150.0, 210.0)) if cut else None,
            slice_offset_mm=float(np.clip(n(0.0, 1.0), -3.0, 3.0)),
        ),
    )
