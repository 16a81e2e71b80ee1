"""Geometry of one DICOM file: pixel spacing, orientation, and whether its frames form a volume.

Multi-frame files are a volume when each frame's position along the slice normal is known
(enhanced CT/MR per-frame Plane Position, RT dose Grid Frame Offset Vector) or when a CT/MR/PT
file records a slice spacing; frames are then sorted by position along the normal, never by
frame number. Anything else (cine, multi-phase, ultrasound loops) is a frame stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from sos_core.imaging.study import StudyKind

Direction = tuple[tuple[float, float, float], ...]

FRAME_AXIS_SPACING = 0.0
"""Spacing given to the first axis of a "frames" study: that axis is not spatial."""

_VOLUME_MODALITIES = frozenset({"CT", "MR", "PT"})
_WARN_DETECTOR = (
    "Pixel spacing is measured at the detector (Imager Pixel Spacing) and is not corrected "
    "for magnification, so distances are approximate."
)
_WARN_UNEVEN = "The slices are unevenly spaced; distances along the slice axis are approximate."
_WARN_TILT = (
    "The slices are shifted sideways from one another (gantry tilt); the volume is shown "
    "unsheared, so its geometry is approximate."
)
_WARN_NO_POSITIONS = (
    "Slice positions are not recorded per frame; the volume assumes evenly spaced slices in "
    "stored order."
)


@dataclass(frozen=True, slots=True)
class Geometry:
    """Where a file's pixels sit in space.

    order
        For volumes whose stored frame order differs from their order along the slice normal,
        the stored index of each output slice; None when the stored order is kept.
    """

    kind: StudyKind
    spacing: tuple[float, ...] | None
    direction: Direction | None = None
    origin: tuple[float, float, float] | None = None
    order: tuple[int, ...] | None = None
    warnings: tuple[str, ...] = ()


def frame_geometry(ds: Dataset, n_frames: int) -> Geometry:
    """Spacing (mm), direction (LPS unit vectors as columns) and kind for `n_frames` frames."""
    in_plane, warnings = in_plane_spacing(ds)
    iop = orientation(ds)
    if n_frames <= 1:
        direction = _direction(iop, None) if iop is not None else None
        return Geometry("image", in_plane, direction, _vector(_position(ds)), None, warnings)
    positions = _frame_positions(ds, n_frames, iop)
    if positions is not None and iop is not None and in_plane is not None:
        volume = _sorted_volume(positions, iop, in_plane, warnings)
        if volume is not None:
            return volume
    slice_gap = _positive_number(ds.get("SpacingBetweenSlices")) or _positive_number(
        ds.get("SliceThickness")
    )
    modality = str(ds.get("Modality", "")).strip().upper()
    if in_plane is not None and slice_gap and modality in _VOLUME_MODALITIES:
        direction = _direction(iop, None) if iop is not None else None
        return Geometry(
            "volume",
            (slice_gap, *in_plane),
            direction,
            _vector(_position(ds)),
            None,
            (*warnings, _WARN_NO_POSITIONS),
        )
    spacing = (FRAME_AXIS_SPACING, *in_plane) if in_plane is not None else None
    return Geometry("frames", spacing, None, None, None, warnings)


def in_plane_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, tuple[str, ...]]:
    """(row spacing, column spacing) in mm and a warning naming where it came from."""
    for source in (ds, *_functional_items(ds, "PixelMeasuresSequence")):
        spacing = _pair(source.get("PixelSpacing"))
        if spacing is not None:
            return spacing, ()
    detector = _pair(ds.get("ImagerPixelSpacing"))
    if detector is not None:
        return detector, (_WARN_DETECTOR,)
    return None, ()


def orientation(ds: Dataset) -> np.ndarray | None:
    """Image Orientation (Patient) as (row cosines, column cosines), validated; else None."""
    for source in (ds, *_functional_items(ds, "PlaneOrientationSequence")):
        iop = _floats(source.get("ImageOrientationPatient"), 6)
        if iop is None:
            continue
        row, col = iop[:3], iop[3:]
        units = abs(np.linalg.norm(row) - 1) < 1e-2 and abs(np.linalg.norm(col) - 1) < 1e-2
        if units and abs(float(row @ col)) < 1e-2:
            return iop
    return None


def _sorted_volume(
    positions: np.ndarray, iop: np.ndarray, in_plane: tuple[float, float], warnings: tuple
) -> Geometry | None:
    normal = np.cross(iop[:3], iop[3:])
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    steps = np.diff(distance[order])
    if steps.size == 0 or float(steps.min()) < 1e-3:
        return None  # frames share a position: phases or echoes, not a volume
    gap = float(np.median(steps))
    if float(steps.max() - steps.min()) > max(0.01, 0.01 * gap):
        warnings = (*warnings, _WARN_UNEVEN)
    offsets = positions[order] - positions[order[0]]
    sideways = offsets - np.outer(offsets @ normal, normal)
    if float(np.abs(sideways).max()) > max(0.01, 0.01 * gap):
        warnings = (*warnings, _WARN_TILT)
    kept = tuple(int(i) for i in order)
    return Geometry(
        "volume",
        (gap, *in_plane),
        _direction(iop, normal),
        _vector(positions[order[0]]),
        None if kept == tuple(range(len(kept))) else kept,
        warnings,
    )


def _frame_positions(ds: Dataset, n_frames: int, iop: np.ndarray | None) -> np.ndarray | None:
    """Per-frame Image Position (Patient), from functional groups or a grid offset vector."""
    items = ds.get("PerFrameFunctionalGroupsSequence")
    if items and len(items) == n_frames:
        found = []
        for item in items:
            plane = item.get("PlanePositionSequence")
            position = _floats(plane[0].get("ImagePositionPatient"), 3) if plane else None
            if position is None:
                break
            found.append(position)
        else:
            return np.stack(found)
    offsets = _floats(ds.get("GridFrameOffsetVector"), n_frames)
    origin = _floats(ds.get("ImagePositionPatient"), 3)
    if offsets is not None and origin is not None and iop is not None:
        # Offsets are relative to the first frame's position (PS3.3 C.8.8.3.2), whether the
        # file writes them relative (first = 0) or as absolute z along an axial normal.
        normal = np.cross(iop[:3], iop[3:])
        return origin + np.outer(offsets - offsets[0], normal)
    return None


def _direction(iop: np.ndarray, normal: np.ndarray | None) -> Direction:
    """3x3, columns = unit vectors of array axes (slices, rows, cols) in LPS."""
    if normal is None:
        normal = np.cross(iop[:3], iop[3:])
    columns = np.stack([normal, iop[3:], iop[:3]], axis=1)
    return tuple((float(r[0]), float(r[1]), float(r[2])) for r in columns)


def _position(ds: Dataset) -> Any:
    position = ds.get("ImagePositionPatient")
    if position is None:
        for item in _functional_items(ds, "PlanePositionSequence"):
            position = item.get("ImagePositionPatient")
            break
    return position


def _vector(value: Any) -> tuple[float, float, float] | None:
    arr = value if isinstance(value, np.ndarray) else _floats(value, 3)
    if arr is None:
        return None
    return float(arr[0]), float(arr[1]), float(arr[2])


def _functional_items(ds: Dataset, group: str) -> list[Dataset]:
    """First item of `group` in the shared, then the first per-frame, functional groups."""
    found = []
    for container in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(container)
        if items and items[0].get(group):
            found.append(items[0].get(group)[0])
    return found


def _floats(value: Any, count: int) -> np.ndarray | None:
    """`count` finite floats from a multi-valued element, else None."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.shape != (count,) or not np.isfinite(arr).all():
        return None
    return arr


def _pair(value: Any) -> tuple[float, float] | None:
    arr = _floats(value, 2)
    if arr is None or (arr <= 0).any():
        return None
    return float(arr[0]), float(arr[1])


def _positive_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None
