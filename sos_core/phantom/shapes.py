"""Analytic solids: superellipsoids with taper and clip planes, singly (`Shape`) and as arrays
(`ShapeSet`) so that growth, pose and culling of a few hundred solids are vectorised.

A `Shape` lives in its own frame (centre, rotation, radii, even exponents); `painter.paint`
rasterises shapes in order (painter's algorithm), which is how layered anatomy (cortex, marrow,
sinus air) is built.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

Mode = Literal["set", "add", "replace_above", "replace_below"]


def rotation(axis: str, degrees: float) -> np.ndarray:
    """3x3 rotation matrix about the x, y or z axis (right-handed, degrees)."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def _unit(v: Sequence[float]) -> tuple[float, float, float]:
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return (v[0] / n, v[1] / n, v[2] / n)


def _cross(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def frame(axis2: Sequence[float], hint0: Sequence[float] = (1.0, 0.0, 0.0)) -> np.ndarray:
    """Rotation whose local axis 2 points along `axis2`, axis 0 as close as possible to `hint0`."""
    a2 = _unit([float(v) for v in axis2])
    h = [float(v) for v in hint0]
    dot = h[0] * a2[0] + h[1] * a2[1] + h[2] * a2[2]
    a0 = (h[0] - a2[0] * dot, h[1] - a2[1] * dot, h[2] - a2[2] * dot)
    if a0[0] ** 2 + a0[1] ** 2 + a0[2] ** 2 < 1e-12:  # hint parallel to the axis
        a0 = _cross(a2, (0.0, 1.0, 0.0) if abs(a2[1]) < 0.9 else (0.0, 0.0, 1.0))
    a0 = _unit(a0)
    a1 = _cross(a2, a0)
    return np.array([[a0[0], a1[0], a2[0]], [a0[1], a1[1], a2[1]], [a0[2], a1[2], a2[2]]])


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """A superellipsoid solid with a value to paint.

    Inside means ``|l0|^p + |l1|^p + |l2|^q <= 1`` where ``l = R^T (x - center) / radii`` and,
    with a taper, ``l0, l1`` are divided by ``1 + taper * l2`` (cones, tooth roots).
    clips: half-spaces ``a*l0 + b*l1 + c*l2 <= d`` in normalised local coordinates.
    value: HU for "set" and the replace modes, an HU offset for "add".
    mode: "replace_above"/"replace_below" paint only where the current value is above/below
    `threshold` (e.g. carve a cartilage gap only where bone is).
    """

    name: str
    center: np.ndarray
    rot: np.ndarray
    radii: tuple[float, float, float]
    value: float
    power: int = 2
    power_z: int = 2
    taper: float = 0.0
    mode: Mode = "set"
    threshold: float = 0.0
    clips: tuple[tuple[float, float, float, float], ...] = field(default=())

    def moved(self, r: np.ndarray, t: np.ndarray) -> Shape:
        """The shape under the rigid motion x -> r @ x + t."""
        return replace(self, center=r @ self.center + t, rot=r @ self.rot)

    def scaled(self, s: float, pivot: np.ndarray) -> Shape:
        """The shape scaled by `s` about `pivot` (growth)."""
        return replace(
            self,
            center=pivot + s * (self.center - pivot),
            radii=(self.radii[0] * s, self.radii[1] * s, self.radii[2] * s),
        )

    def with_world_clip(self, normal: np.ndarray, point: np.ndarray) -> Shape:
        """The shape cut by the plane through `point`, keeping (x - point) . normal <= 0."""
        n = np.asarray(normal, dtype=np.float64)
        coef = (n @ self.rot) * np.asarray(self.radii)
        d = float((np.asarray(point) - self.center) @ n)
        clip = (float(coef[0]), float(coef[1]), float(coef[2]), d)
        return replace(self, clips=(*self.clips, clip))

    def half_extent(self, direction: np.ndarray) -> float:
        """Half the width of the shape's local bounding box along a unit direction (mm)."""
        grow = 1.0 + abs(self.taper)
        r = np.array([self.radii[0] * grow, self.radii[1] * grow, self.radii[2]])
        return float(np.sum(r * np.abs(direction @ self.rot)))


def shape(
    name: str,
    center: Sequence[float],
    radii: Sequence[float],
    value: float,
    rot: np.ndarray | None = None,
    **kw: object,
) -> Shape:
    """Convenience constructor taking plain sequences."""
    return Shape(
        name=name,
        center=np.asarray(center, dtype=np.float64),
        rot=np.eye(3) if rot is None else np.asarray(rot, dtype=np.float64),
        radii=(float(radii[0]), float(radii[1]), float(radii[2])),
        value=float(value),
        **kw,  # type: ignore[arg-type]
    )


_MODES: dict[str, int] = {"set": 0, "add": 1, "replace_above": 2, "replace_below": 3}


@dataclass(frozen=True, slots=True, eq=False)
class ShapeSet:
    """Many shapes as arrays, so that growth, pose and culling are vectorised.

    centers (N, 3) mm; rots (N, 3, 3) with local axes as columns; radii (N, 3) mm; the other
    arrays hold one entry per shape (see `Shape`). Order is painting order.
    """

    names: tuple[str, ...]
    centers: np.ndarray
    rots: np.ndarray
    radii: np.ndarray
    values: np.ndarray
    powers: np.ndarray
    powers_z: np.ndarray
    tapers: np.ndarray
    modes: np.ndarray
    thresholds: np.ndarray
    clips: tuple[tuple[tuple[float, float, float, float], ...], ...]

    @classmethod
    def of(cls, shapes: Sequence[Shape]) -> ShapeSet:
        return cls(
            names=tuple(s.name for s in shapes),
            centers=np.array([s.center for s in shapes], dtype=np.float64).reshape(-1, 3),
            rots=np.array([s.rot for s in shapes], dtype=np.float64).reshape(-1, 3, 3),
            radii=np.array([s.radii for s in shapes], dtype=np.float64).reshape(-1, 3),
            values=np.array([s.value for s in shapes], dtype=np.float32),
            powers=np.array([s.power for s in shapes], dtype=np.int8),
            powers_z=np.array([s.power_z for s in shapes], dtype=np.int8),
            tapers=np.array([s.taper for s in shapes], dtype=np.float32),
            modes=np.array([_MODES[s.mode] for s in shapes], dtype=np.int8),
            thresholds=np.array([s.threshold for s in shapes], dtype=np.float32),
            clips=tuple(s.clips for s in shapes),
        )

    def __len__(self) -> int:
        return len(self.names)

    def scaled(self, s: float, pivot: np.ndarray, to: np.ndarray | None = None) -> ShapeSet:
        """Scaled by `s` about `pivot`, then (optionally) translated so the pivot lands on `to`."""
        dest = pivot if to is None else to
        return replace(self, centers=dest + s * (self.centers - pivot), radii=self.radii * s)

    def moved(self, r: np.ndarray, t: np.ndarray) -> ShapeSet:
        """Under the rigid motion x -> r @ x + t."""
        return replace(
            self, centers=self.centers @ r.T + t, rots=np.einsum("ij,njk->nik", r, self.rots)
        )

    def __add__(self, other: ShapeSet) -> ShapeSet:
        return ShapeSet.concat([self, other])

    @staticmethod
    def concat(sets: Sequence[ShapeSet]) -> ShapeSet:
        """One set holding `sets` in order."""
        return ShapeSet(
            names=tuple(n for s in sets for n in s.names),
            centers=np.concatenate([s.centers for s in sets]),
            rots=np.concatenate([s.rots for s in sets]),
            radii=np.concatenate([s.radii for s in sets]),
            values=np.concatenate([s.values for s in sets]),
            powers=np.concatenate([s.powers for s in sets]),
            powers_z=np.concatenate([s.powers_z for s in sets]),
            tapers=np.concatenate([s.tapers for s in sets]),
            modes=np.concatenate([s.modes for s in sets]),
            thresholds=np.concatenate([s.thresholds for s in sets]),
            clips=tuple(c for s in sets for c in s.clips),
        )

    def shape(self, i: int) -> Shape:
        """Shape `i` as a `Shape` record."""
        mode = next(k for k, v in _MODES.items() if v == self.modes[i])
        return Shape(
            name=self.names[i],
            center=self.centers[i],
            rot=self.rots[i],
            radii=(float(self.radii[i, 0]), float(self.radii[i, 1]), float(self.radii[i, 2])),
            value=float(self.values[i]),
            power=int(self.powers[i]),
            power_z=int(self.powers_z[i]),
            taper=float(self.tapers[i]),
            mode=mode,  # type: ignore[arg-type]
            threshold=float(self.thresholds[i]),
            clips=self.clips[i],
        )

    def half_extents(self, direction: np.ndarray) -> np.ndarray:
        """(N,) half widths of the shapes along a unit direction (mm), never too small.

        Exact for ellipsoids (their support function); the local bounding box otherwise.
        """
        grow = 1.0 + np.abs(self.tapers.astype(np.float64))
        r = self.radii * np.stack([grow, grow, np.ones_like(grow)], axis=1)
        proj = r * np.abs(np.einsum("j,njk->nk", direction, self.rots))
        box = np.sum(proj, axis=1)
        ellipsoid = (self.powers == 2) & (self.powers_z == 2) & (self.tapers == 0)
        return np.where(ellipsoid, np.sqrt(np.sum(proj * proj, axis=1)), box)
