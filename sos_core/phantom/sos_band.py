"""The spheno-occipital synchondrosis at a continuous fusion fraction.

The band is a thin cartilage slab crossing the clivus (an ellipsoid of bone) from its
endocranial (posterior-superior) surface to its ectocranial (anterior-inferior, pharyngeal)
surface. Band coordinates, in mm, are taken in the clivus frame: w lateral (local axis 0),
e towards the ectocranial surface (axis 1), u along the clivus towards the basion (axis 2,
measured from the band). With h(w, u) the clivus half-thickness there, the normalised depth
s = (e + h) / 2h runs from 0 (endocranial) to 1 (ectocranial). Bony bridging fills the gap
where s < fraction (plus an irregular front); the rest of the gap is cartilage, lined by thin
sclerotic margins. A completely fused band leaves at most a faint sclerotic scar.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from sos_core.phantom.materials import BONE_THRESHOLD, CARTILAGE
from sos_core.phantom.painter import Grid, bounding_box, local_coords, slabs
from sos_core.phantom.params import SubjectParams
from sos_core.phantom.shapes import Shape, frame

logger = logging.getLogger(__name__)

RIM_MM = 0.6  # sclerotic margin either side of the open gap
RIM_HU = 1150.0
ISLAND_HU = 900.0
SCAR_MM = 0.9
BOX_MARGIN_MM = 5.0  # context around the band in the reported SOS box
BOX_MIN_SIDE_MM = 18.0


@dataclass(frozen=True, slots=True, eq=False)
class SosBand:
    """Geometry and state of the synchondrosis (lengths in mm, patient or head frame).

    center, rot, radii: the clivus ellipsoid (radii: lateral, half-thickness, half-length).
    u_band: band position along the clivus axis from its centre.
    phases: random phases of the waviness and of the bridging front.
    islands: (k, 4) array of osseous islands (w, e, t, radius) in band coordinates.
    """

    center: np.ndarray
    rot: np.ndarray
    radii: tuple[float, float, float]
    u_band: float
    fraction: float
    gap_mm: float
    tilt: float
    wave_mm: float
    front_jitter: float
    scar_hu: float
    phases: tuple[float, float, float, float]
    islands: np.ndarray

    def scaled(self, s: float) -> SosBand:
        """Grown by `s` about the head-frame origin (the sella)."""
        return replace(
            self,
            center=self.center * s,
            radii=(self.radii[0] * s, self.radii[1] * s, self.radii[2] * s),
            u_band=self.u_band * s,
            gap_mm=self.gap_mm * s,
            wave_mm=self.wave_mm * s,
            islands=self.islands * s,
        )

    def moved(self, r: np.ndarray, t: np.ndarray) -> SosBand:
        """Under the rigid motion x -> r @ x + t."""
        return replace(self, center=r @ self.center + t, rot=r @ self.rot)

    @property
    def length_mm(self) -> float:
        """Endocranial-to-ectocranial length of the band on the mid-sagittal plane."""
        return 2.0 * self.half_thickness(0.0, self.u_band)

    def half_thickness(self, w: float | np.ndarray, a2: float | np.ndarray) -> np.ndarray:
        """Clivus half-thickness (mm) at lateral w and axial position a2 from the centre."""
        r0, r1, r2 = self.radii
        q = 1.0 - (np.asarray(w) / r0) ** 2 - (np.asarray(a2) / r2) ** 2
        return r1 * np.sqrt(np.maximum(q, 0.0))

    def ectocranial_point(self) -> np.ndarray:
        """Where the band meets the ectocranial (pharyngeal) surface on the midline."""
        h = float(self.half_thickness(0.0, self.u_band))
        return self.center + self.rot[:, 2] * self.u_band + self.rot[:, 1] * h

    def clip_anterior(self, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """(normal, point) of the plane just anterior of the band; for cutting the sphenoid."""
        axis1, axis2 = self.rot[:, 1], self.rot[:, 2]
        normal = axis2 - math.tan(self.tilt) * axis1
        normal = normal / np.linalg.norm(normal)
        back = self.gap_mm / 2 + margin_mm + self.wave_mm
        return normal, self.center + axis2 * (self.u_band - back)

    def _bounds(self) -> Shape:
        """A box-like solid enclosing everything the band paints."""
        r0, r1, _ = self.radii
        half = self.gap_mm / 2 + RIM_MM + self.wave_mm + abs(math.tan(self.tilt)) * (r1 + 1) + 1.0
        c = self.center + self.rot[:, 2] * self.u_band
        return Shape("sos bounds", c, self.rot, (r0, r1 + 1.0, half), 0.0, power=8, power_z=8)

    def _centreline(self, e: np.ndarray) -> np.ndarray:
        lam = 0.9 * self.radii[1]
        return math.tan(self.tilt) * e + self.wave_mm * np.sin(
            2 * math.pi * e / lam + self.phases[0]
        )

    def _half_width(self, e: np.ndarray) -> np.ndarray:
        return (
            0.5
            * self.gap_mm
            * (1.0 + 0.15 * np.sin(2 * math.pi * e / (1.3 * self.radii[1]) + self.phases[1]))
        )

    def _front(self, t: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Normalised depth reached by the bridging at (t, w); mean over t at w = 0 is f."""
        j = self.front_jitter
        ph2, ph3 = self.phases[2], self.phases[3]
        lateral = np.sin(2 * math.pi * w / (0.8 * self.radii[0]) + ph3) - math.sin(ph3)
        return (
            self.fraction + j * np.sin(2 * math.pi * t / max(self.gap_mm, 0.5) + ph2) + j * lateral
        )

    def paint(self, out: np.ndarray, grid: Grid) -> None:
        """Carve the band into the bone already painted on `out` (in place)."""
        b = self._bounds()
        box = bounding_box(grid, b)
        if box is None:
            return
        plane = int(np.prod([sl.stop - sl.start for sl in box[1:]]))
        for sub in slabs(box, plane):
            lc = local_coords(grid, b, sub)
            self._paint_region(out[sub], lc[0] * b.radii[0], lc[1] * b.radii[1], lc[2] * b.radii[2])

    def _paint_region(
        self, region: np.ndarray, w: np.ndarray, e: np.ndarray, u: np.ndarray
    ) -> None:
        h = self.half_thickness(w, u + self.u_band)
        ok = h > 0.3
        h = np.where(ok, h, np.float32(1.0))
        s = (e + h) / (2.0 * h)
        t = u - self._centreline(e)
        hw = self._half_width(e)
        depth_ok = ok & (s > -0.1) & (s < 1.1)
        bone = region > BONE_THRESHOLD
        at = np.abs(t)
        if self.fraction >= 1.0:
            if self.scar_hu > 0:
                scar = depth_ok & (at < SCAR_MM / 2) & bone & (s > 0.02) & (s < 0.98)
                np.add(region, np.float32(self.scar_hu), out=region, where=scar)
            return
        front = self._front(t, w) if self.fraction > 0 else np.float32(-1.0)
        open_ = depth_ok & (s > front)
        rim = open_ & (at >= hw) & (at < hw + RIM_MM) & bone
        np.copyto(region, np.float32(RIM_HU), where=rim)
        gap = open_ & (at < hw) & bone
        np.copyto(region, np.float32(CARTILAGE), where=gap)
        for wi, ei, ti, ri in self.islands:
            isle = gap & ((w - wi) ** 2 + (e - ei) ** 2 + (t - ti) ** 2 < ri * ri)
            np.copyto(region, np.float32(ISLAND_HU), where=isle)

    def points(self, n_w: int = 15) -> np.ndarray:
        """Sample points (N, 3) filling the band solid, in this band's frame of reference."""
        r0, r1, _ = self.radii
        e = np.linspace(-r1, r1, 13)
        tt = np.linspace(-1.0, 1.0, 3)
        w = np.linspace(-r0, r0, n_w)
        ww, ee, tn = np.meshgrid(w, e, tt, indexing="ij")
        return self._to_frame(ww.ravel(), ee.ravel(), tn.ravel())

    def section(self, plane_x: float) -> np.ndarray:
        """Points (N, 3) of the band where it crosses the sagittal plane x = plane_x."""
        r1 = self.radii[1]
        e = np.linspace(-r1, r1, 25)
        tt = np.linspace(-1.0, 1.0, 3)
        ee, tn = np.meshgrid(e, tt, indexing="ij")
        ee, tn = ee.ravel(), tn.ravel()
        zero = self._to_frame(np.zeros_like(ee), ee, tn, keep_all=True)
        one = self._to_frame(np.ones_like(ee), ee, tn, keep_all=True)
        dx = one[:, 0] - zero[:, 0]
        if np.all(np.abs(dx) < 1e-9):
            return np.zeros((0, 3))
        w = (plane_x - zero[:, 0]) / np.where(np.abs(dx) < 1e-9, 1e-9, dx)
        return self._to_frame(w, ee, tn)

    def _to_frame(
        self, w: np.ndarray, e: np.ndarray, tn: np.ndarray, keep_all: bool = False
    ) -> np.ndarray:
        """Band coordinates (t in units of the gap half-width plus rim) to 3-D points."""
        half = self.gap_mm / 2 + RIM_MM
        u = tn * half + self._centreline(e)
        a2 = u + self.u_band
        pts = self.center + np.stack([w, e, a2], axis=1) @ self.rot.T
        if keep_all:
            return pts
        inside = np.abs(e) <= self.half_thickness(w, a2) + 1e-9
        return pts[inside & (self.half_thickness(w, a2) > 0.3)]


def make_band(
    p: SubjectParams, d: np.ndarray, n_ecto: np.ndarray, rng: np.random.Generator
) -> SosBand:
    """The band of subject `p` in the (unscaled) head frame; d: clivus direction."""
    s = p.sos
    centre_along = 21.0
    center = centre_along * d + 2.5 * n_ecto
    rot = frame(d, (1.0, 0.0, 0.0))
    h = p.clivus_half_thickness_mm
    radii = (13.0, h, 25.0)
    phases = tuple(float(v) for v in rng.uniform(0, 2 * math.pi, 4))
    isl = []
    for _ in range(s.islands):
        e = rng.uniform(0.2, 0.8) * 2 * h - h
        isl.append((rng.uniform(-6, 6), e, rng.uniform(-0.3, 0.3), rng.uniform(0.4, 0.7)))
    return SosBand(
        center=center,
        rot=rot,
        radii=radii,
        u_band=s.position_mm - centre_along,
        fraction=s.fusion_fraction,
        gap_mm=s.gap_mm,
        tilt=math.radians(s.tilt_deg),
        wave_mm=s.wave_mm,
        front_jitter=s.front_jitter if 0 < s.fusion_fraction < 1 else 0.0,
        scar_hu=s.scar_hu,
        phases=(phases[0], phases[1], phases[2], phases[3]),
        islands=np.asarray(isl, dtype=np.float64).reshape(-1, 4),
    )


def sos_box(
    rows: np.ndarray,
    cols: np.ndarray,
    spacing: tuple[float, float],
    margin_mm: float = BOX_MARGIN_MM,
    min_side_mm: float = BOX_MIN_SIDE_MM,
) -> tuple[float, float, float, float]:
    """Square (in mm) box [x0, y0, x1, y1] around band pixels, with context margin."""
    r0, r1 = float(rows.min()), float(rows.max())
    c0, c1 = float(cols.min()), float(cols.max())
    side = max((r1 - r0) * spacing[0], (c1 - c0) * spacing[1]) + 2 * margin_mm
    side = max(side, min_side_mm)
    rc, cc = (r0 + r1) / 2, (c0 + c1) / 2
    hr, hc = side / spacing[0] / 2, side / spacing[1] / 2
    # +0.5: pixel centres are at integer indices, a box edge at x covers pixels >= x.
    return (cc - hc + 0.5, rc - hr + 0.5, cc + hc + 0.5, rc + hr + 0.5)
