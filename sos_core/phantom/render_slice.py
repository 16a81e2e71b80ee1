"""Fast 2-D sagittal slices, evaluated analytically on the plane (no volume is built).

The slice is the patient plane x = midline + offset, so a rotated head is cut obliquely, as a
real reformat of a tilted head would be. Pixels are HU in display orientation.
"""

from __future__ import annotations

import logging

import numpy as np

from sos_core.errors import ParameterError
from sos_core.phantom import artefacts
from sos_core.phantom.anatomy import Head, build_head
from sos_core.phantom.materials import AIR, METAL
from sos_core.phantom.painter import Grid, paint, slice_grid
from sos_core.phantom.params import SubjectParams, subject_rng
from sos_core.phantom.records import PhantomImage
from sos_core.phantom.sos_band import sos_box

logger = logging.getLogger(__name__)

DEFAULT_SIZE = 256
DEFAULT_SPACING_MM = 0.9
# A reformatted mid-sagittal slice follows the head up to this share of its yaw and roll.
TILT_RESIDUAL = 0.3


def check_size(size: int | tuple[int, int], lo: int = 16, hi: int = 4096) -> tuple[int, int]:
    """(rows, cols) from an int or pair, or ParameterError."""
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ParameterError("the image size must be a whole number of pixels (or a pair of them).")
    if not all(lo <= v <= hi for v in pair):
        raise ParameterError(
            f"the image size must be {lo} to {hi} pixels, not {pair[0]} x {pair[1]}."
        )
    return int(pair[0]), int(pair[1])


def check_spacing(spacing: float | tuple[float, float]) -> tuple[float, float]:
    """(row, col) spacing in mm, or ParameterError."""
    pair = (spacing, spacing) if isinstance(spacing, (int, float)) else tuple(spacing)
    if len(pair) != 2 or not all(
        isinstance(v, (int, float)) and np.isfinite(v) and 0.05 <= v <= 10 for v in pair
    ):
        raise ParameterError("the pixel spacing must be between 0.05 and 10 mm.")
    return float(pair[0]), float(pair[1])


def metal_centres(head: Head) -> np.ndarray:
    """(k, 3) patient positions of metal objects (brackets)."""
    return head.shapes.centers[head.shapes.values >= METAL]


def band_centre(head: Head) -> np.ndarray:
    """Patient position of the centre of the SOS band."""
    return head.band.center + head.band.rot[:, 2] * head.band.u_band


def box_on_grid(head: Head, grid: Grid, plane_x: float) -> tuple[float, float, float, float]:
    """The SOS box in the pixels of a sagittal grid, or ParameterError if the plane misses it."""
    pts = head.band.section(plane_x)
    if len(pts) == 0:
        raise ParameterError(
            "this slice does not cross the synchondrosis; choose a slice nearer the midline."
        )
    idx = grid.index_of(pts)
    return sos_box(
        idx[:, 0],
        idx[:, 1],
        (float(np.linalg.norm(grid.steps[0])), float(np.linalg.norm(grid.steps[1]))),
    )


def render_slice(
    subject: SubjectParams,
    *,
    size: int | tuple[int, int] = DEFAULT_SIZE,
    spacing: float | tuple[float, float] = DEFAULT_SPACING_MM,
    center_yz_mm: tuple[float, float] | None = None,
    offset_mm: float | None = None,
    artefacts_on: bool = True,
    head: Head | None = None,
) -> PhantomImage:
    """Render the (near) mid-sagittal slice of `subject`.

    Parameters
    ----------
    size, spacing
        Pixels (rows, cols) and mm per pixel; default 256 x 256 at 0.9 mm (the whole head).
    center_yz_mm
        Patient (y, z) of the image centre; default the scanner centre (0, 0).
    offset_mm
        Distance of the plane from the head midline; default the subject's `slice_offset_mm`.
    artefacts_on
        False renders the noiseless, unblurred anatomy (for tests and figures).
    head
        A prebuilt `build_head(subject)` to reuse.

    Raises
    ------
    ParameterError
        For a bad size or spacing, or a plane that misses the synchondrosis.
    """
    rows, cols = check_size(size)
    dr, dc = check_spacing(spacing)
    head = head if head is not None else build_head(subject, tilt_residual=TILT_RESIDUAL)
    acq = subject.acq
    off = acq.slice_offset_mm if offset_mm is None else float(offset_mm)
    plane_x = head.midline_x_mm + off
    cy, cz = (0.0, 0.0) if center_yz_mm is None else center_yz_mm
    grid = slice_grid(
        plane_x, (cy + (cols - 1) / 2 * dc, cz + (rows - 1) / 2 * dr), (rows, cols), (dr, dc)
    )
    img = np.full((rows, cols), AIR, np.float32)
    paint(img, grid, head.shapes)
    head.band.paint(img, grid)
    box = box_on_grid(head, grid, plane_x)
    if artefacts_on:
        _artefacts(img, grid, head, subject, plane_x, (dr, dc))
    return PhantomImage(
        image=img,
        modality="slice",
        pixel_spacing=(dr, dc),
        stage=subject.stage,
        fusion_fraction=subject.fusion_fraction,
        sos_box=box,
        subject=subject,
        plane_x_mm=plane_x,
    )


def _artefacts(
    img: np.ndarray,
    grid: Grid,
    head: Head,
    p: SubjectParams,
    plane_x: float,
    sp: tuple[float, float],
) -> None:
    rng = subject_rng(p.seed, 2)
    acq = p.acq
    rows, cols = img.shape
    y = (grid.origin[1] + np.arange(cols) * grid.steps[1, 1]).astype(np.float32)[None, :]
    z = (grid.origin[2] + np.arange(rows) * grid.steps[0, 2]).astype(np.float32)[:, None]
    artefacts.add_texture(img, sp, rng)
    sx, sy = head.pose_shift[0], head.pose_shift[1]
    artefacts.cupping(img, (plane_x - sx) ** 2 + (y - sy) ** 2, acq.cupping_hu)
    metal = metal_centres(head)
    if len(metal):
        lobes = artefacts.streak_lobes(rng, len(metal))
        rows_w = artefacts.streak_falloff(z[:, 0], metal[:, 2])
        hit = np.nonzero(rows_w.any(axis=1))[0]
        if len(hit):
            pat = artefacts.streak_patterns(np.float32(plane_x), y[0], metal, lobes, acq.streak_hu)
            img[hit] += np.einsum("rk,kc->rc", rows_w[hit], pat)
    sig = (acq.blur_mm / sp[0], acq.blur_mm / sp[1])
    # Noise enters before the system blur, which then gives it the reconstruction's grain.
    img += artefacts.white_noise(img.shape, acq.noise_hu, sig, rng)
    img[...] = artefacts.blur(img, sig)
    artefacts.finish(
        img, artefacts.fov_mask_2d(y, z, plane_x, acq.fov_diameter_mm, acq.fov_height_mm)
    )
