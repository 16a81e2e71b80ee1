"""Sagittal reformats of a volume, in the display orientation of a lateral cephalogram.

A sagittal slice is the plane perpendicular to the patient's left-right axis. It is returned
with rows running superior -> inferior and columns posterior -> anterior, so the face is on the
right as on a lateral cephalogram. Which array axis is which comes from `Study.direction`
(LPS: +x left, +y posterior, +z superior); a volume without direction is taken as axial:
slices along +z, rows along +y, columns along +x (the DICOM patient axes).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from sos_core.errors import ParameterError
from sos_core.imaging.study import Study

logger = logging.getLogger(__name__)

_AXIAL = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))  # columns: +z, +y, +x


def axes_matrix(direction: Sequence[Sequence[float]] | None) -> np.ndarray:
    """3x3 array whose columns are the LPS unit vectors of the (slices, rows, cols) axes."""
    return np.asarray(direction if direction is not None else _AXIAL, dtype=np.float64)


def lr_axis_of(direction: Sequence[Sequence[float]] | None) -> int:
    """The array axis closest to the patient's left-right axis, from a direction matrix."""
    return int(np.argmax(np.abs(axes_matrix(direction)[0])))


def lr_axis(study: Study) -> int:
    """The array axis of `study` closest to the patient's left-right axis (0, 1 or 2)."""
    _require_volume(study)
    return lr_axis_of(study.direction)


def sagittal_count(study: Study) -> int:
    """How many sagittal slices `study` has (its size along the left-right axis)."""
    return int(study.pixels.shape[lr_axis(study)])


def sagittal_slice(study: Study, index: int, *, slab_mm: float = 0.0) -> Study:
    """One sagittal slice (or the mean of a thin slab) as a 2-D Study in display orientation.

    Parameters
    ----------
    study
        A volume.
    index
        Sagittal index along the left-right array axis, 0 <= index < `sagittal_count`.
    slab_mm
        Slab thickness (mm): the slices within +/- slab_mm / 2 of `index` are averaged
        (float32 result). 0 gives the single slice in the volume's dtype.

    Returns
    -------
    Study
        kind "image"; rows superior -> inferior, columns posterior -> anterior; spacing
        (row mm, column mm).

    Raises
    ------
    ParameterError
        `study` is not a volume, or `index` / `slab_mm` are out of range.
    """
    lr = lr_axis(study)
    n = study.pixels.shape[lr]
    if not 0 <= index < n:
        raise ParameterError(f"Sagittal slice {index} does not exist; choose 0 to {n - 1}.")
    if not (math.isfinite(slab_mm) and slab_mm >= 0):
        raise ParameterError("The slab thickness must be zero or a positive number of mm.")
    lr_spacing = study.spacing[lr] if study.spacing else 1.0
    half = int(math.floor(slab_mm / 2.0 / lr_spacing + 1e-9)) if slab_mm > 0 else 0
    lo, hi = max(0, index - half), min(n, index + half + 1)
    block = np.moveaxis(study.pixels, lr, 0)[lo:hi]
    plane = block.mean(axis=0, dtype=np.float32) if hi - lo > 1 else block[0]
    plane, axes = _display(plane, [a for a in range(3) if a != lr], study.direction)
    spacing = (study.spacing[axes[0]], study.spacing[axes[1]]) if study.spacing else None
    what = f"{slab_mm:g} mm slab" if hi - lo > 1 else "slice"
    return Study(
        pixels=np.ascontiguousarray(plane),
        kind="image",
        modality=study.modality,
        spacing=spacing,
        window=study.window,
        description=f"sagittal {what} {index + 1} of {n} ({study.description})",
        sources=study.sources,
        warnings=study.warnings,
        series=study.series,
    )


def _display(
    plane: np.ndarray, axes: list[int], direction: Sequence[Sequence[float]] | None
) -> tuple[np.ndarray, list[int]]:
    """Transpose and flip a plane spanned by volume `axes` to superior-up, anterior-right."""
    m = axes_matrix(direction)
    if abs(m[2, axes[1]]) > abs(m[2, axes[0]]):  # the second axis is the vertical one
        plane, axes = plane.T, [axes[1], axes[0]]
    if m[2, axes[0]] > 0:  # index grows towards superior: flip so superior is row 0
        plane = plane[::-1, :]
    if m[1, axes[1]] > 0:  # index grows towards posterior (+y): flip so anterior is right
        plane = plane[:, ::-1]
    return plane, axes


def _require_volume(study: Study) -> None:
    if study.kind != "volume" or study.pixels.ndim != 3:
        raise ParameterError("A sagittal reformat needs a 3-D volume; this study is not one.")
