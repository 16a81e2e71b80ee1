"""Teeth on parabolic dental arches, alveolar bone, mandible, brackets and hyoid (head frame, mm).

Permanent dentition regardless of age, on purpose: the erupting teeth of children would tell the
age, and through it the stage. The arches are built once (cached); a subject moves them by a
small dental-midline shift and arch jitter.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np

from sos_core.phantom.materials import CORTEX, DENTIN, ENAMEL, MARROW, METAL, PULP
from sos_core.phantom.params import SubjectParams
from sos_core.phantom.shapes import Shape, ShapeSet, frame, rotation, shape

logger = logging.getLogger(__name__)

# Per tooth, midline to back: mesiodistal width, labiolingual width, crown height, root length,
# axial inclination (deg, crown towards the lip).
_UPPER = (
    (8.5, 7.0, 10.5, 13.0, 24.0),
    (6.6, 6.0, 9.0, 13.0, 20.0),
    (7.6, 8.0, 10.0, 17.0, 14.0),
    (7.0, 9.0, 8.0, 14.0, 8.0),
    (6.6, 9.0, 7.5, 14.0, 6.0),
    (10.2, 11.0, 7.0, 13.0, 2.0),
    (9.0, 10.5, 6.5, 12.0, 0.0),
)
_LOWER = (
    (5.4, 6.0, 9.0, 12.5, 22.0),
    (5.9, 6.3, 9.5, 13.5, 18.0),
    (6.9, 7.5, 11.0, 16.0, 10.0),
    (7.0, 7.8, 8.0, 14.0, 5.0),
    (7.1, 8.2, 7.5, 14.5, 2.0),
    (11.0, 10.5, 7.0, 14.0, -3.0),
    (10.2, 10.0, 6.5, 13.0, -5.0),
)
_UPPER_ARCH = (-74.0, 0.050)  # y at the midline, curvature k in y = y0 + k x^2
_LOWER_ARCH = (-70.5, 0.054)
_OCCLUSAL_Z = -72.0
_OCCLUSAL_SLOPE = 0.17  # occlusal plane rises posteriorly (about 10 degrees to Frankfort)


def _arch_positions(y0: float, k: float, widths: list[float]) -> list[tuple[float, float, float]]:
    """(x, y, slope dy/dx) of tooth centres along y = y0 + k x^2, left side, by arc length."""
    xs = np.linspace(0.0, 40.0, 4001)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(k * xs**2)))])
    out = []
    edge = 0.0
    for w in widths:
        centre = edge + w / 2
        edge += w
        x = float(np.interp(centre, arc, xs))
        out.append((x, y0 + k * x * x, 2 * k * x))
    return out


def _tooth(
    name: str, tip: np.ndarray, axis: np.ndarray, tangent: np.ndarray, dims: tuple[float, ...]
) -> list[Shape]:
    """Root (dentin, tapered), crown (enamel over dentin) and pulp along `axis` (apex -> tip)."""
    md, ll, crown, root, _ = dims
    rot = frame(axis, tangent)
    crown_c = tip - axis * (crown / 2)
    root_c = tip - axis * (crown + root / 2 - 1.5)
    taper = 0.54  # apex radius 0.3 of the cervical radius
    rr = (md * 0.40 / (1 + taper), ll * 0.44 / (1 + taper), root / 2 + 1.5)
    return [
        Shape(name + " root", root_c, rot, rr, DENTIN, taper=taper, power=4),
        Shape(name + " crown", crown_c, rot, (md / 2, ll / 2, crown / 2), ENAMEL, power=4),
        Shape(
            name + " crown dentin",
            crown_c - axis * 1.0,
            rot,
            (md * 0.36, ll * 0.34, crown * 0.38),
            DENTIN,
            power=4,
        ),
        Shape(
            name + " pulp",
            root_c + axis * 2.0,
            rot,
            (md * 0.09, ll * 0.12, root / 2 + 1.0),
            PULP,
            taper=taper,
        ),
    ]


@functools.lru_cache(maxsize=2)
def _arch(upper: bool) -> tuple[ShapeSet, ShapeSet, ShapeSet, ShapeSet]:
    """(alveolar cortex, alveolar marrow, teeth, brackets) of one arch, centred on the midline."""
    table = _UPPER if upper else _LOWER
    y0, k = _UPPER_ARCH if upper else _LOWER_ARCH
    pos = _arch_positions(y0, k, [t[0] for t in table])
    cortex, marrow, teeth, brackets = [], [], [], []
    sign = -1.0 if upper else 1.0  # direction from apex to crown tip along z
    for side in (1.0, -1.0):
        for i, ((x, y, slope), dims) in enumerate(zip(pos, table, strict=True)):
            tangent = np.array([side, slope, 0.0]) / math.hypot(1.0, slope)
            labial = np.array([side * slope, -1.0, 0.0]) / math.hypot(1.0, slope)
            tilt = math.radians(dims[4])
            axis = math.cos(tilt) * np.array([0.0, 0.0, sign]) + math.sin(tilt) * labial
            z_occ = _OCCLUSAL_Z + _OCCLUSAL_SLOPE * (y - _UPPER_ARCH[0]) + (0.0 if upper else 1.8)
            tip = np.array([side * x, y, z_occ])
            name = f"{'upper' if upper else 'lower'} {i + 1}{'L' if side > 0 else 'R'}"
            teeth += _tooth(name, tip, axis, tangent, dims)
            md, ll, crown, root, _ = dims
            socket = tip - axis * (crown + root / 2 - 2.5)
            rot = frame(axis, tangent)
            cortex.append(
                Shape(
                    name + " alveolus",
                    socket,
                    rot,
                    (md / 2 + 3.0, ll / 2 + 2.4, root / 2 + 3.0),
                    CORTEX,
                    power=4,
                )
            )
            marrow.append(
                Shape(
                    name + " alveolus marrow",
                    socket,
                    rot,
                    (md / 2 + 2.4, ll / 2 + 1.2, root / 2 + 2.0),
                    MARROW,
                    power=4,
                )
            )
    if upper:  # the palate joins the upper alveolar ridge as one bone
        for name, c, r, rot in (
            ("hard palate", [0.0, -43.0, -44.5], (19.0, 26.0, 3.0), np.eye(3)),
            ("premaxilla", [0.0, -64.0, -47.0], (13.0, 8.0, 8.0), rotation("x", -20)),
        ):
            cortex.append(Shape(name, np.array(c), rot, r, CORTEX, power=4))
            marrow.append(
                Shape(
                    name + " marrow",
                    np.array(c),
                    rot,
                    (r[0] - 1.1, r[1] - 1.1, r[2] - 1.1),
                    MARROW,
                    power=4,
                )
            )
            if i <= 5:
                bc = tip - axis * (crown * 0.45) + labial * (ll / 2 + 0.7)
                brackets.append(
                    Shape(
                        name + " bracket",
                        bc,
                        frame(labial, tangent),
                        (1.6, 1.4, 0.8),
                        METAL,
                        power=8,
                        power_z=8,
                    )
                )
    return ShapeSet.of(cortex), ShapeSet.of(marrow), ShapeSet.of(teeth), ShapeSet.of(brackets)


@functools.lru_cache(maxsize=1)
def _mandible() -> tuple[ShapeSet, ShapeSet]:
    """(cortex, marrow) of symphysis, body (along the arch, then to gonion), rami, condyles."""
    y0, k = _LOWER_ARCH
    parts: list[tuple[Shape, Shape]] = []

    def add(
        name: str,
        c: np.ndarray,
        rot: np.ndarray,
        r: tuple[float, float, float],
        cortex: float,
        power: int = 4,
    ) -> None:
        inner = (r[0] - cortex, r[1] - cortex, r[2] - cortex)
        parts.append(
            (
                Shape(name, c, rot, r, CORTEX, power=power),
                Shape(name + " marrow", c, rot, inner, MARROW, power=power),
            )
        )

    add("symphysis", np.array([0.0, -67.0, -97.0]), rotation("x", -14), (13.0, 7.5, 15.5), 2.0)
    gonion = np.array([46.0, 1.0, -82.0])
    for side in (1.0, -1.0):
        mirror = np.diag([side, 1.0, 1.0])
        pts = [
            np.array([x, y0 + k * x * x - 1.5, -94.0 + 0.25 * x]) for x in (8.0, 15.0, 21.0, 27.0)
        ]
        start = pts[-1]
        pts += [start + f * (gonion - start) for f in (0.33, 0.66, 1.0)]
        for j, c in enumerate(pts):
            nxt = pts[min(j + 1, len(pts) - 1)] - pts[max(j - 1, 0)]
            rot = mirror @ frame([0.0, 0.0, 1.0], [nxt[0], nxt[1], 0.0]) @ mirror
            add(f"mandible body {j}", mirror @ c, rot, (7.5, 5.8, 13.5 - 1.5 * j / len(pts)), 2.0)
        add(
            f"ramus {side:+.0f}",
            np.array([side * 47, 6.0, -54.0]),
            frame([0.0, 0.2, 1.0]),
            (4.5, 14.0, 27.0),
            1.6,
            2,
        )
        add(
            f"mandibular condyle {side:+.0f}",
            np.array([side * 49, 12.0, -23.0]),
            np.eye(3),
            (9.0, 5.0, 5.5),
            1.3,
            2,
        )
    return ShapeSet.of([c for c, _ in parts]), ShapeSet.of([m for _, m in parts])


@functools.lru_cache(maxsize=1)
def _hyoid() -> ShapeSet:
    out = [
        shape("hyoid", [0, -24, -112], [9, 3.5, 5], CORTEX),
        shape("hyoid marrow", [0, -24, -112], [7.5, 2.2, 3.8], MARROW),
    ]
    for side in (1.0, -1.0):
        rot = frame([side * 0.45, 1.0, 0.15], (0.0, 0.0, 1.0))
        out.append(
            Shape(
                f"hyoid horn {side:+.0f}",
                np.array([side * 13, -12, -109.0]),
                rot,
                (1.8, 1.8, 13.0),
                CORTEX,
            )
        )
    return ShapeSet.of(out)


def jaws(p: SubjectParams, rng: np.random.Generator) -> ShapeSet:
    """Maxillary and mandibular bone, teeth and (if worn) brackets, in painting order."""
    # Dental midline shift: a midline slice then usually cuts into a central incisor.
    mid = float(rng.choice([-1.0, 1.0]) * rng.uniform(1.2, 2.6))
    up = np.array([mid, rng.normal(0, 1.0), rng.normal(0, 0.8)])
    lo = up + [rng.normal(0, 0.4), rng.normal(0, 0.8), 0.0]
    zero = np.zeros(3)
    uc, um, ut, ub = (s.scaled(1.0, zero, up) for s in _arch(True))
    lc, lm, lt, lb = (s.scaled(1.0, zero, lo) for s in _arch(False))
    mc, mm = _mandible()
    parts = [uc, mc, lc, um, mm, lm, _hyoid(), ut, lt]
    if p.acq.brackets:
        parts += [ub, lb]
    return ShapeSet.concat(parts)
