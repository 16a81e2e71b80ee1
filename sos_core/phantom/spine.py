"""Cervical vertebrae C1-C5 with discs and their own growth plates (look-alikes of the SOS).

Positions are offsets from the basion in the head frame (mm). The dentocentral synchondrosis
of C2 and the vertebral end-plate cartilage follow the subject's own `dentocentral` and
`endplates` values, drawn independently of the SOS stage, so a classifier cannot read the stage
from them; they are there to look like the SOS and make the search harder.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np

from sos_core.phantom.materials import BONE_THRESHOLD, CARTILAGE, CORTEX, DISC, MARROW
from sos_core.phantom.params import SubjectParams
from sos_core.phantom.shapes import Shape, ShapeSet, frame, shape

logger = logging.getLogger(__name__)

_PLATE = {"mode": "replace_above", "threshold": BONE_THRESHOLD}
_BODY_RADII = (9.0, 8.2, 7.0)
_C2_BODY = (np.array([0.0, -0.5, -34.0]), (9.0, 8.5, 10.0))


class _Bone:
    """Collects the cortex and marrow solids of one compound bone."""

    def __init__(self) -> None:
        self.cortex: list[Shape] = []
        self.marrow: list[Shape] = []

    def add(
        self,
        name: str,
        c: np.ndarray,
        rot: np.ndarray,
        r: tuple[float, float, float],
        cortex: float = 1.2,
        **kw: object,
    ) -> None:
        inner = (max(0.3, r[0] - cortex), max(0.3, r[1] - cortex), max(0.3, r[2] - cortex))
        self.cortex.append(Shape(name, c, rot, r, CORTEX, **kw))  # type: ignore[arg-type]
        self.marrow.append(Shape(name + " marrow", c, rot, inner, MARROW, **kw))  # type: ignore[arg-type]

    def tube(
        self, name: str, a: np.ndarray, b: np.ndarray, radius: float, cortex: float = 1.0
    ) -> None:
        rot = frame(b - a, (1.0, 0.0, 0.0))
        half = float(np.linalg.norm(b - a)) / 2
        self.add(name, (a + b) / 2, rot, (radius, radius, half), cortex, power_z=4)

    def shapes(self) -> ShapeSet:
        return ShapeSet.of(self.cortex + self.marrow)


@functools.lru_cache(maxsize=1)
def _atlas_and_axis() -> ShapeSet:
    """C1 (a ring of solids, lateral masses bigger) and C2 (dens, body, spinous process)."""
    c1 = _Bone()
    centre = np.array([0.0, 13.0, -14.0])
    for k in range(16):
        a = 2 * math.pi * k / 16
        pos = centre + np.array([20.0 * math.sin(a), -23.0 * math.cos(a), 0.0])
        lateral = abs(math.sin(a)) > 0.8
        r = (7.0, 8.0, 8.0) if lateral else (4.0, 3.6, 5.0)
        c1.add(f"atlas {k}", pos, frame([0.0, 0.0, 1.0], (math.cos(a), math.sin(a), 0.0)), r)
    c2 = _Bone()
    dens_a, dens_b = np.array([0.0, -0.5, -5.0]), np.array([0.0, -0.5, -26.0])
    rot = frame(dens_a - dens_b, (1.0, 0.0, 0.0))
    c2.add("dens", (dens_a + dens_b) / 2, rot, (5.2, 5.2, 10.5), taper=-0.3)
    _vertebra(c2, "C2", *_C2_BODY)
    return c1.shapes() + c2.shapes()


def _vertebra(b: _Bone, name: str, c: np.ndarray, r: tuple[float, float, float]) -> None:
    eye = np.eye(3)
    b.add(name + " body", c, eye, r, power=4)
    big = name == "C2"
    b.tube(
        name + " spinous",
        c + [0.0, 15.0, 2.0],
        c + [0.0, 33.0 if big else 28.0, -6.0],
        5.0 if big else 3.5,
    )
    for side in (1.0, -1.0):
        b.add(
            f"{name} pillar {side:+.0f}", c + [side * 17.0, 12.0, 0.0], eye, (6.0, 7.0, r[2] + 1.0)
        )
        b.tube(
            f"{name} lamina {side:+.0f}",
            c + [side * 14.0, 14.0, 0.0],
            c + [0.0, 17.0, -1.0],
            2.2,
            0.8,
        )


@functools.lru_cache(maxsize=1)
def _lower_vertebra() -> ShapeSet:
    """A C3-C5 type vertebra centred at its body centre."""
    b = _Bone()
    _vertebra(b, "C", np.zeros(3), _BODY_RADII)
    return b.shapes()


def _plate(
    name: str,
    c: np.ndarray,
    radii: tuple[float, float, float],
    state: float,
    rng: np.random.Generator,
) -> list[Shape]:
    """A growth plate inside bone: open (<1/3), partly bridged (<2/3) or a sclerotic remnant."""
    if state < 1 / 3:
        return [shape(name, c, radii, CARTILAGE, **_PLATE)]
    if state < 2 / 3:
        keep = rng.uniform(-0.4, 0.4)  # only the anterior part stays open
        return [shape(name, c, radii, CARTILAGE, clips=((0.0, 1.0, 0.0, keep),), **_PLATE)]
    return [shape(name, c, (radii[0], radii[1], radii[2] * 0.6), 250.0, mode="add")]


def vertebrae(p: SubjectParams, rng: np.random.Generator, ba: np.ndarray) -> ShapeSet:
    """C1-C5 in painting order (discs and plates after the bones), offsets from basion `ba`."""
    lord = rng.normal(0.0, 1.0)  # lordosis variation: lower bodies shift forward
    centres = [ba + _C2_BODY[0]]
    sets = [_atlas_and_axis().scaled(1.0, np.zeros(3), ba)]
    for k in range(3):
        c = ba + [0.0, -2.5 - (1.0 + 0.4 * lord) * k, -56.0 - 19.0 * k]
        centres.append(c)
        sets.append(_lower_vertebra().scaled(1.0, np.zeros(3), c))
    radii = [_C2_BODY[1]] + [_BODY_RADII] * 3
    extra: list[Shape] = []
    for c_up, r_up, c_lo, r_lo in zip(
        centres[:-1], radii[:-1], centres[1:], radii[1:], strict=True
    ):
        gap_c = (c_up - [0.0, 0.0, r_up[2]] + c_lo + [0.0, 0.0, r_lo[2]]) / 2
        extra.append(shape("disc", gap_c, (8.8, 8.0, 2.6), DISC, power=4))
    extra += _plate(
        "dentocentral synchondrosis", ba + [0.0, -0.5, -24.5], (5.6, 5.6, 0.65), p.dentocentral, rng
    )
    for c in centres[1:]:
        state = p.endplates + rng.normal(0, 0.15)
        for sgn in (1.0, -1.0):
            extra += _plate(
                "end plate",
                c + [0.0, 0.0, sgn * (_BODY_RADII[2] - 1.9)],
                (7.5, 7.0, 0.45),
                state,
                rng,
            )
    return ShapeSet.concat([*sets, ShapeSet.of(extra)])
