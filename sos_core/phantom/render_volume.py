"""CBCT volumes in HU: the posed head painted on a 3-D grid, with noise, blur, cupping and metal
streaks. Array axes (z, y, x) with slices increasing in z, rows in y (posterior), columns in x
(left): the DICOM orientation [1, 0, 0, 0, 1, 0]. The head pose lives in the content.
"""

from __future__ import annotations

import logging

import numpy as np

from sos_core.errors import ParameterError
from sos_core.phantom import artefacts
from sos_core.phantom.anatomy import Head, build_head
from sos_core.phantom.materials import AIR
from sos_core.phantom.painter import Grid, paint, slice_grid, volume_grid
from sos_core.phantom.params import SubjectParams, subject_rng
from sos_core.phantom.records import PhantomVolume
from sos_core.phantom.render_slice import box_on_grid, metal_centres

logger = logging.getLogger(__name__)

DEFAULT_VOLUME_SIZE = 256
DEFAULT_VOLUME_SPACING_MM = 0.9


def _triple(value: object, what: str, lo: float, hi: float, cast: type) -> tuple:
    trip = (
        (value, value, value)
        if isinstance(value, (int, float, np.integer, np.floating))
        else tuple(value)
    )  # type: ignore[arg-type]
    ok = len(trip) == 3 and all(
        isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v) and lo <= v <= hi
        for v in trip
    )
    if not ok or (cast is int and not all(float(v).is_integer() for v in trip)):
        raise ParameterError(f"the volume {what} must be {lo:g} to {hi:g} (one value or three).")
    return tuple(cast(v) for v in trip)


def render_volume(
    subject: SubjectParams,
    *,
    size: int | tuple[int, int, int] = DEFAULT_VOLUME_SIZE,
    spacing: float | tuple[float, float, float] = DEFAULT_VOLUME_SPACING_MM,
    artefacts_on: bool = True,
    head: Head | None = None,
) -> PhantomVolume:
    """Render a CBCT volume of `subject`, centred on the scanner origin.

    Parameters
    ----------
    size
        Voxels along (z, y, x); default 256 cubed.
    spacing
        mm per voxel along (z, y, x); default 0.9 (a 230 mm field of view).
    artefacts_on
        False gives the noiseless, unblurred anatomy.
    head
        A prebuilt `build_head(subject)` to reuse.

    Raises
    ------
    ParameterError
        For a bad size or spacing, or a volume whose mid-sagittal slice misses the SOS.
    """
    shape = _triple(size, "size in voxels", 8, 1024, int)
    sp = _triple(spacing, "spacing in mm", 0.05, 10.0, float)
    head = head if head is not None else build_head(subject)
    # Patient (x, y, z) of voxel [0, 0, 0], so that the volume is centred on the origin.
    origin = np.array(
        [-(shape[2] - 1) / 2 * sp[2], -(shape[1] - 1) / 2 * sp[1], -(shape[0] - 1) / 2 * sp[0]]
    )
    grid = volume_grid(origin, shape, sp)
    vol = np.full(shape, AIR, np.float32)
    paint(vol, grid, head.shapes)
    head.band.paint(vol, grid)
    if artefacts_on:
        _artefacts(vol, grid, head, subject)
    else:
        artefacts.finish(vol, None)
    ix = int(np.clip(round((head.midline_x_mm - origin[0]) / sp[2]), 0, shape[2] - 1))
    plane_x = float(origin[0] + ix * sp[2])
    top = (float(origin[1] + (shape[1] - 1) * sp[1]), float(origin[2] + (shape[0] - 1) * sp[0]))
    sag = slice_grid(plane_x, top, (shape[0], shape[1]), (sp[0], sp[1]))
    box = box_on_grid(head, sag, plane_x)
    return PhantomVolume(
        volume=vol.astype(np.int16),
        spacing=(sp[0], sp[1], sp[2]),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        stage=subject.stage,
        fusion_fraction=subject.fusion_fraction,
        sos_box=box,
        midline_x_mm=head.midline_x_mm,
        midline_index=ix,
        subject=subject,
    )


def _artefacts(vol: np.ndarray, grid: Grid, head: Head, p: SubjectParams) -> None:
    rng = subject_rng(p.seed, 3)
    acq = p.acq
    nz, ny, nx = vol.shape
    dz, dy, dx = (float(grid.steps[0, 2]), float(grid.steps[1, 1]), float(grid.steps[2, 0]))
    x = (grid.origin[0] + np.arange(nx) * dx).astype(np.float32)[None, :]
    y = (grid.origin[1] + np.arange(ny) * dy).astype(np.float32)[:, None]
    z = grid.origin[2] + np.arange(nz) * dz
    artefacts.add_texture(vol, (dz, dy, dx), rng)
    sx, sy = head.pose_shift[0], head.pose_shift[1]
    r2 = (x - np.float32(sx)) ** 2 + (y - np.float32(sy)) ** 2
    for k in range(nz):  # per slice: the cupping profile is the same on every axial plane
        artefacts.cupping(vol[k], r2, acq.cupping_hu)
    metal = metal_centres(head)
    if len(metal):
        lobes = artefacts.streak_lobes(rng, len(metal))
        weights = artefacts.streak_falloff(z, metal[:, 2])
        hit = np.nonzero(weights.any(axis=1))[0]
        if len(hit):
            pat = artefacts.streak_patterns(x, y, metal, lobes, acq.streak_hu)
            for k in hit:
                vol[k] += np.einsum("k,kyx->yx", weights[k], pat)
    sig = (acq.blur_mm / dz, acq.blur_mm / dy, acq.blur_mm / dx)
    vol += artefacts.white_noise(vol.shape, acq.noise_hu, sig, rng)
    vol[...] = artefacts.blur(vol, sig)
    outside = None
    if acq.fov_diameter_mm is not None:
        disc = (x**2 + y**2) > (acq.fov_diameter_mm / 2) ** 2
        zcut = np.abs(z) > (acq.fov_height_mm or 1e9) / 2
        outside = disc[None, :, :] | zcut[:, None, None]
    artefacts.finish(vol, outside)
