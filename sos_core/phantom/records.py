"""What the renderers return: frozen records carrying the pixels and the ground truth."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sos_core.phantom.params import SubjectParams
from sos_core.phantom.stages import STAGE_NAMES

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


def _freeze(arr: np.ndarray) -> None:
    if arr.flags.writeable:
        arr.flags.writeable = False


@dataclass(frozen=True, slots=True)
class PhantomImage:
    """A 2-D phantom image in display orientation (rows superior->inferior, columns
    posterior->anterior, face on the right).

    image: read-only float32; HU for a slice, detector units (log attenuation, 0..1 nominal) for
        a cephalogram.
    pixel_spacing: (row, col) mm; for a cephalogram at the detector (divide by `magnification`
        for the mid-sagittal plane).
    sos_box: [x0, y0, x1, y1] = [col0, row0, col1, row1] in this image's pixels, x1/y1 exclusive.
    plane_x_mm: patient x of a slice's plane (None for a cephalogram).
    """

    image: np.ndarray
    modality: Literal["slice", "ceph"]
    pixel_spacing: tuple[float, float]
    stage: int
    fusion_fraction: float
    sos_box: Box
    subject: SubjectParams
    plane_x_mm: float | None = None
    magnification: float = 1.0

    def __post_init__(self) -> None:
        _freeze(self.image)

    @property
    def seed(self) -> int:
        return self.subject.seed

    @property
    def stage_name(self) -> str:
        return STAGE_NAMES[self.stage]


@dataclass(frozen=True, slots=True)
class PhantomVolume:
    """A CBCT volume in HU (int16, read-only), array axes (z, y, x) = (slices, rows, cols).

    spacing: (dz, dy, dx) mm; origin: LPS mm of voxel [0, 0, 0]; the DICOM orientation is
    [1, 0, 0, 0, 1, 0] with slices increasing in z.
    midline_x_mm / midline_index: the head's mid-sagittal plane and the nearest column index.
    sos_box: in the pixels of the mid-sagittal slice `sagittal(midline_index)` (display
    orientation: rows = z descending, columns = y descending).
    """

    volume: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    stage: int
    fusion_fraction: float
    sos_box: Box
    midline_x_mm: float
    midline_index: int
    subject: SubjectParams

    def __post_init__(self) -> None:
        _freeze(self.volume)

    @property
    def seed(self) -> int:
        return self.subject.seed

    @property
    def stage_name(self) -> str:
        return STAGE_NAMES[self.stage]

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(row, col) mm of the sagittal slices: (dz, dy)."""
        return (self.spacing[0], self.spacing[1])

    def sagittal(self, index: int | None = None) -> np.ndarray:
        """The sagittal slice at column `index` (default: the midline) in display orientation."""
        i = self.midline_index if index is None else index
        return self.volume[::-1, ::-1, i]
