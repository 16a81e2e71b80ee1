"""The `Study` record: what every loader returns and everything downstream consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

StudyKind = Literal["image", "volume", "frames"]


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One series found in a folder, as shown to the user when choosing.

    `key` is an opaque, stable handle for `open_study(path, series=key)`; it is derived from the
    SeriesInstanceUID but is not the UID itself (DI-2).
    """

    key: str
    modality: str
    description: str
    n_files: int
    rows: int
    columns: int


@dataclass(frozen=True, slots=True)
class Study:
    """An image or volume in modality units, with its geometry.

    pixels
        Read-only array in modality units (HU for CT after Rescale Slope/Intercept; raw stored
        values otherwise), in the smallest dtype that holds them exactly.
        kind "image":  (rows, cols).
        kind "volume": (slices, rows, cols), slices sorted by position along the slice normal.
        kind "frames": (frames, rows, cols), a stack of 2-D frames that is not a spatial volume.
    spacing
        mm per pixel along each array axis, same length as `pixels.ndim`; None when unknown
        (e.g. a PNG without a given spacing). For volumes the first entry is the slice spacing.
    direction
        3x3 tuple (row-major) whose *columns* are the unit vectors, in DICOM patient
        coordinates (LPS: +x left, +y posterior, +z superior), of array axes (slices, rows, cols)
        for volumes; None when unknown (2-D images, rasters).
    origin
        Patient position (mm, LPS) of pixel [0, 0, 0] for volumes; None otherwise.
    window
        (center, width) default display window in modality units, from VOI LUT / Window
        Center-Width when present, else from the data percentiles.
    modality
        DICOM Modality ("CT", "DX", "CR", "MR", "OT", ...) or "PNG"/"JPEG"/"TIFF" for rasters.
    description
        Short de-identified text ("CT volume 400x512x512, 0.3 mm"); never a name, id or date.
    sources
        The file(s) the pixels came from, in slice order.
    warnings
        Sentences for the reviewer about odd data (uneven spacing, palette colour, ...),
        never silently fixed.
    series
        Every series found when a folder was opened (one entry for single files).
    """

    pixels: np.ndarray
    kind: StudyKind
    modality: str
    spacing: tuple[float, ...] | None = None
    direction: tuple[tuple[float, float, float], ...] | None = None
    origin: tuple[float, float, float] | None = None
    window: tuple[float, float] | None = None
    description: str = ""
    sources: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()
    series: tuple[SeriesInfo, ...] = field(default=())

    def __post_init__(self) -> None:
        expected = 2 if self.kind == "image" else 3
        if self.pixels.ndim != expected:
            raise ValueError(
                f"a {self.kind} study needs {expected}-D pixels, got {self.pixels.ndim}-D"
            )
        if self.spacing is not None and len(self.spacing) != self.pixels.ndim:
            raise ValueError("spacing must have one entry per pixel axis")
        if self.pixels.flags.writeable:
            self.pixels.flags.writeable = False

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.pixels.shape)

    @property
    def is_volume(self) -> bool:
        return self.kind == "volume"
