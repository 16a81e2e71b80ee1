"""Rasterising shapes on regular grids: the painter's algorithm with bounding-box culling.

A `Grid` maps array indices to patient coordinates (mm, LPS): a 2-D plane for slices, a 3-D
block for volumes or cephalogram plane stacks. Each shape is evaluated only inside its bounding
box; large ellipsoids are solved row by row (one interval per row) instead of point by point.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sos_core.phantom.shapes import Shape, ShapeSet

logger = logging.getLogger(__name__)

# 3-D grids are painted in slabs of this many points so temporaries stay in the CPU cache.
_CHUNK_VOXELS = 1 << 18


@dataclass(frozen=True, slots=True)
class Grid:
    """Regular sampling grid: patient position of index i is ``origin + sum_a i[a] * steps[a]``.

    steps: (ndim, 3) mm per index along each array axis; the axes must be orthogonal.
    """

    shape: tuple[int, ...]
    origin: np.ndarray
    steps: np.ndarray

    def point(self, index: Sequence[float]) -> np.ndarray:
        """Patient coordinates (mm) of a (fractional) array index."""
        return self.origin + np.asarray(index, dtype=np.float64) @ self.steps

    def index_of(self, points: np.ndarray) -> np.ndarray:
        """Fractional array indices of patient points (..., 3); the off-plane part is dropped."""
        rel = np.asarray(points, dtype=np.float64) - self.origin
        norms2 = np.sum(self.steps**2, axis=1)
        return (rel @ self.steps.T) / norms2

    def normal(self) -> np.ndarray | None:
        """Unit normal of a 2-D grid's plane; None for 3-D grids."""
        if len(self.shape) != 2:
            return None
        a, b = self.steps[0], self.steps[1]
        n = np.array(
            [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
        )
        return n / math.sqrt(float(n @ n))


def _boxes(grid: Grid, shapes: ShapeSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(visible mask, lo, hi) index ranges of the grid that can meet each shape."""
    n = len(shapes)
    keep = np.ones(n, bool)
    nrm = grid.normal()
    if nrm is not None:
        keep &= np.abs((shapes.centers - grid.origin) @ nrm) <= shapes.half_extents(nrm)
    centre = grid.index_of(shapes.centers)
    lo = np.zeros((n, len(grid.shape)), np.int64)
    hi = np.zeros_like(lo)
    for a, size in enumerate(grid.shape):
        step = float(np.linalg.norm(grid.steps[a]))
        half = shapes.half_extents(grid.steps[a] / step) / step
        lo[:, a] = np.maximum(0, np.floor(centre[:, a] - half))
        hi[:, a] = np.minimum(size, np.ceil(centre[:, a] + half) + 1)
        keep &= lo[:, a] < hi[:, a]
    return keep, lo, hi


def bounding_box(grid: Grid, s: Shape) -> tuple[slice, ...] | None:
    """Index ranges of the grid that can intersect one shape, or None if none can."""
    keep, lo, hi = _boxes(grid, ShapeSet.of([s]))
    if not keep[0]:
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo[0], hi[0], strict=True))


def _pow(v: np.ndarray, p: int) -> np.ndarray:
    sq = v * v
    if p == 2:
        return sq
    if p == 4:
        return sq * sq
    if p == 6:
        return sq * sq * sq
    q = sq * sq
    return q * q


def _affine(
    grid: Grid, centers: np.ndarray, rots: np.ndarray, radii: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per shape: local = const + coef @ index, in normalised units; (N, 3) and (N, 3, ndim)."""
    m = np.transpose(rots, (0, 2, 1)) / radii[:, :, None]
    const = np.einsum("njk,nk->nj", m, grid.origin - centers)
    coef = m @ grid.steps.T
    return const, coef


def _coords(const: np.ndarray, coef: np.ndarray, ranges: list[np.ndarray]) -> np.ndarray:
    """Local coordinates, shape (3, *box), on index ranges (1-D float32, one per grid axis)."""
    c, k = const, coef
    if len(ranges) == 2:
        a = k[:, 0, None] * ranges[0][None, :] + c[:, None]
        b = k[:, 1, None] * ranges[1][None, :]
        return a[:, :, None] + b[:, None, :]
    plane = (k[:, 1, None] * ranges[1][None, :] + c[:, None])[:, :, None] + (
        k[:, 2, None] * ranges[2][None, :]
    )[:, None, :]
    return plane[:, None, :, :] + (k[:, 0, None] * ranges[0][None, :])[:, :, None, None]


def _local(
    grid: Grid, center: np.ndarray, rot: np.ndarray, radii: np.ndarray, box: tuple[slice, ...]
) -> np.ndarray:
    const, coef = _affine(grid, center[None], rot[None], radii[None])
    ranges = [np.arange(sl.start, sl.stop, dtype=np.float32) for sl in box]
    return _coords(const[0].astype(np.float32), coef[0].astype(np.float32), ranges)


def local_coords(grid: Grid, s: Shape, box: tuple[slice, ...]) -> np.ndarray:
    """Normalised local coordinates (3, *box) of the grid points in `box`, float32."""
    return _local(grid, s.center, s.rot, np.asarray(s.radii, dtype=np.float64), box)


def _inside(
    lc: np.ndarray,
    power: int,
    power_z: int,
    taper: float,
    clips: Sequence[tuple[float, float, float, float]],
) -> np.ndarray:
    if power == 2 and power_z == 2 and not taper:
        sq = lc * lc
        f = sq[0] + sq[1]
        f += sq[2]
    else:
        l0, l1, l2 = lc[0], lc[1], lc[2]
        if taper:
            inv = 1.0 / np.maximum(1.0 + np.float32(taper) * l2, np.float32(0.05))
            l0, l1 = l0 * inv, l1 * inv
        f = _pow(l0, power) + _pow(l1, power)
        f += _pow(l2, power_z)
    mask = f <= 1.0
    for a, b, c, d in clips:
        mask &= (a * lc[0] + b * lc[1] + c * lc[2]) <= d
    return mask


def _inside_rows(
    const: np.ndarray,
    coef: np.ndarray,
    ranges: list[np.ndarray],
    clips: Sequence[tuple[float, float, float, float]],
) -> np.ndarray:
    """Inside-mask of an ellipsoid (powers 2, no taper), solved row by row.

    Along the last grid axis the normalised radius is a quadratic in the index, so each row is
    inside on one interval (clip planes shorten it): two comparisons per point instead of
    computing three coordinates and their squares.
    """
    k = coef[:, -1]
    lead = ranges[:-1]
    if len(lead) == 1:
        p = const[:, None] + coef[:, 0, None] * lead[0][None, :]
    else:
        p = (const[:, None] + coef[:, 0, None] * lead[0][None, :])[:, :, None] + (
            coef[:, 1, None] * lead[1][None, :]
        )[:, None, :]
    a = float(k.astype(np.float64) @ k.astype(np.float64))
    p0, p1, p2 = p[0], p[1], p[2]
    b = k[0] * p0 + k[1] * p1 + k[2] * p2
    c = p0 * p0 + p1 * p1 + p2 * p2
    disc = b * b - np.float32(a) * (c - 1.0)
    root = np.sqrt(np.maximum(disc, 0.0))
    lo = (-b - root) / np.float32(a)
    hi = (-b + root) / np.float32(a)
    hi[disc < 0] = -np.inf
    for ca, cb, cc, d in clips:
        sv = ca * p[0] + cb * p[1] + cc * p[2]
        t = float(ca * k[0] + cb * k[1] + cc * k[2])
        if t > 1e-12:
            hi = np.minimum(hi, (d - sv) / np.float32(t))
        elif t < -1e-12:
            lo = np.maximum(lo, (d - sv) / np.float32(t))
        else:
            hi[sv > d] = -np.inf
    i = ranges[-1]
    return (i >= lo[..., None]) & (i <= hi[..., None])


def inside(s: Shape, lc: np.ndarray) -> np.ndarray:
    """Boolean mask of points inside the shape, from its local coordinates."""
    return _inside(lc, s.power, s.power_z, s.taper, s.clips)


def _apply(
    region: np.ndarray, mode: int, value: np.float32, threshold: float, mask: np.ndarray
) -> None:
    if mode == 1:
        np.add(region, value, out=region, where=mask)
        return
    if mode == 2:
        mask &= region > threshold
    elif mode == 3:
        mask &= region < threshold
    np.copyto(region, value, where=mask)


def slabs(box: tuple[slice, ...], plane: int) -> Iterator[tuple[slice, ...]]:
    """Split a 3-D box into slabs along axis 0 of about _CHUNK_VOXELS points each."""
    if len(box) < 3:
        yield box
        return
    step = max(1, _CHUNK_VOXELS // max(1, plane))
    for lo in range(box[0].start, box[0].stop, step):
        yield (slice(lo, min(lo + step, box[0].stop)), *box[1:])


def paint(out: np.ndarray, grid: Grid, shapes: ShapeSet | Sequence[Shape]) -> None:
    """Paint `shapes` in order onto `out` (float32, shape `grid.shape`) in place."""
    ss = shapes if isinstance(shapes, ShapeSet) else ShapeSet.of(shapes)
    keep, lo, hi = _boxes(grid, ss)
    idx = np.nonzero(keep)[0]
    if not len(idx):
        return
    const, coef = _affine(grid, ss.centers[idx], ss.rots[idx], ss.radii[idx])
    const, coef = const.astype(np.float32), coef.astype(np.float32)
    full = [np.arange(n, dtype=np.float32) for n in grid.shape]
    los, his = lo[idx].tolist(), hi[idx].tolist()
    powers, powers_z = ss.powers[idx].tolist(), ss.powers_z[idx].tolist()
    tapers, modes, thresholds = (
        ss.tapers[idx].tolist(),
        ss.modes[idx].tolist(),
        ss.thresholds[idx].tolist(),
    )
    values = ss.values[idx]
    for k, i in enumerate(idx.tolist()):
        box = tuple(slice(a, b) for a, b in zip(los[k], his[k], strict=True))
        args = (powers[k], powers_z[k], tapers[k], ss.clips[i])
        if len(box) == 2:
            subs: Iterator[tuple[slice, ...]] | tuple[tuple[slice, ...]] = (box,)
        else:
            subs = slabs(box, (his[k][1] - los[k][1]) * (his[k][2] - los[k][2]))
        # The row solve pays off on large boxes; tiny ones are cheaper point by point.
        n_points = (
            (his[k][0] - los[k][0])
            * (his[k][1] - los[k][1])
            * (his[k][2] - los[k][2] if len(box) == 3 else 1)
        )
        quadric = powers[k] == 2 and powers_z[k] == 2 and not tapers[k] and n_points > 4096
        for sub in subs:
            ranges = [full[a][sl] for a, sl in enumerate(sub)]
            if quadric:
                mask = _inside_rows(const[k], coef[k], ranges, ss.clips[i])
            else:
                mask = _inside(_coords(const[k], coef[k], ranges), *args)
            _apply(out[sub], modes[k], values[k], thresholds[k], mask)


def slice_grid(
    plane_x: float,
    top_left_yz: tuple[float, float],
    size: tuple[int, int],
    spacing: tuple[float, float],
) -> Grid:
    """A sagittal plane x = plane_x in display orientation.

    Row r is at z = z0 - r * spacing[0] (superior to inferior); column c at
    y = y0 - c * spacing[1] (posterior to anterior, face on the right).
    """
    y0, z0 = top_left_yz
    return Grid(
        shape=(int(size[0]), int(size[1])),
        origin=np.array([plane_x, y0, z0], dtype=np.float64),
        steps=np.array([[0.0, 0.0, -spacing[0]], [0.0, -spacing[1], 0.0]], dtype=np.float64),
    )


def volume_grid(
    origin: Sequence[float], size: tuple[int, int, int], spacing: tuple[float, float, float]
) -> Grid:
    """A (z, y, x) volume grid with slices increasing in z, rows in y, columns in x."""
    dz, dy, dx = spacing
    return Grid(
        shape=(int(size[0]), int(size[1]), int(size[2])),
        origin=np.asarray(origin, dtype=np.float64),
        steps=np.array([[0.0, 0.0, dz], [0.0, dy, 0.0], [dx, 0.0, 0.0]], dtype=np.float64),
    )
