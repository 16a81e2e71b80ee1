"""A folder of DICOM files -> one series -> a `Study` volume sorted along the slice normal.

The slices are ordered by their position along the normal of ImageOrientationPatient (never by
file name or InstanceNumber). Odd geometry is reported, never silently fixed: uneven spacing,
missing slices and gantry tilt become `Study.warnings`; mixed orientations, mixed sizes and two
different images at one position raise `InconsistentSeries`. A copy of the same instance (same
SOPInstanceUID at the same position) is dropped with a warning.

Memory: the final array is allocated once and filled slice by slice from a thread pool (see
`slice_reader`), so a 400-slice CT costs its int16 size plus a few slice buffers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sos_core.errors import InconsistentSeries, NoImagesFound, SeriesNotChosen
from sos_core.imaging.folder_scan import FolderScan, group_series, scan_headers, series_infos
from sos_core.imaging.limits import DEFAULT_LIMITS, LoadLimits
from sos_core.imaging.pixels import default_window
from sos_core.imaging.slice_header import SliceHeader
from sos_core.imaging.slice_reader import SliceReader
from sos_core.imaging.study import SeriesInfo, Study

logger = logging.getLogger(__name__)

_IOP_TOLERANCE = 1e-3  # direction cosines that differ more than this are another orientation
_SHEAR_DEGREES = 0.05


@dataclass(frozen=True, slots=True)
class VolumePlan:
    """Sorted slices and their geometry, decided from headers alone.

    spacing: mm along (slices, rows, cols); direction: 3x3 row-major, columns are the LPS unit
    vectors of the array axes; origin: LPS mm of voxel [0, 0, 0].
    """

    headers: tuple[SliceHeader, ...]
    spacing: tuple[float, float, float]
    direction: tuple[tuple[float, float, float], ...]
    origin: tuple[float, float, float]
    warnings: tuple[str, ...]


def open_folder(
    path: Path, *, series: str | None = None, limits: LoadLimits = DEFAULT_LIMITS
) -> Study:
    """Open the image series in a folder (and its sub-folders) as a `Study`.

    Parameters
    ----------
    path
        The folder. Only file headers are read until a series is chosen (DC-6).
    series
        `SeriesInfo.key` of the series to open; None opens the only image series.
    limits
        Header and pixel budgets.

    Raises
    ------
    NoImagesFound
        No DICOM image is in the folder.
    SeriesNotChosen
        Several image series and no (or an unknown) `series`; `.series` lists them.
    InconsistentSeries
        The chosen series' slices cannot form one volume.
    """
    path = Path(path)
    return open_scan(scan_headers(path, limits=limits), where=path, series=series, limits=limits)


def open_scan(scan: FolderScan, *, where: Path, series: str | None, limits: LoadLimits) -> Study:
    """Choose a series among scanned headers and load it (shared by folders and DICOMDIR)."""
    headers, infos = choose_series(scan, series, where=where)
    study = assemble(headers, limits=limits)
    return dataclasses.replace(
        study, series=infos, warnings=tuple(scan.warnings) + tuple(study.warnings)
    )


def choose_series(
    scan: FolderScan, series: str | None, *, where: Path
) -> tuple[list[SliceHeader], tuple[SeriesInfo, ...]]:
    """The headers of the requested (or only) series, and every series found."""
    infos = tuple(series_infos(scan.headers))
    if not infos:
        raise NoImagesFound(
            f"No DICOM images were found among the {scan.n_files} files checked; choose the "
            "folder that holds the image files.",
            path=where,
        )
    groups = group_series(scan.headers)
    if series is None:
        if len(infos) == 1:
            return groups[infos[0].key], infos
        raise SeriesNotChosen(
            f"This folder holds {len(infos)} image series; choose the one to open.",
            path=where,
            series=infos,
        )
    if series not in groups:
        raise SeriesNotChosen(
            f"The requested series is not in this folder; choose one of the {len(infos)} series "
            "found.",
            path=where,
            series=infos,
        )
    return groups[series], infos


def assemble(headers: list[SliceHeader], *, limits: LoadLimits = DEFAULT_LIMITS) -> Study:
    """Load one series' files into a Study (a volume when the slices carry geometry)."""
    if len(headers) == 1:
        from sos_core.imaging.dicom_file import read_dicom_file

        return read_dicom_file(headers[0].path, limits=limits)
    first = headers[0]
    if any(h.frames > 1 for h in headers):
        raise InconsistentSeries(
            "This series holds several multi-frame files, which cannot be joined into one "
            "volume; open one of its files directly.",
            path=first.path,
        )
    if any(h.samples != 1 for h in headers):
        raise InconsistentSeries(
            "This series holds colour images, which cannot form a volume; open one of its "
            "files directly.",
            path=first.path,
        )
    _check_same_size(headers)
    if all(h.position and h.orientation for h in headers):
        plan = plan_volume(headers)
        reader = SliceReader(plan.headers, limits=limits)
        pixels = reader.read_all()
        return Study(
            pixels=pixels,
            kind="volume",
            modality=first.modality,
            spacing=plan.spacing,
            direction=plan.direction,
            origin=plan.origin,
            window=_window(first, pixels),
            description=_describe(first.modality, pixels.shape, plan.spacing),
            sources=tuple(h.path for h in plan.headers),
            warnings=plan.warnings,
        )
    return _frames(headers, limits)


def _frames(headers: list[SliceHeader], limits: LoadLimits) -> Study:
    """Images without position: a frame stack, ordered by instance number (not a volume)."""
    ordered = sorted(headers, key=lambda h: (h.instance_number or 0, h.path.name))
    pixels = SliceReader(ordered, limits=limits).read_all()
    first = ordered[0]
    note = (
        "These images carry no slice position, so they are shown as separate frames in the "
        "order of their instance numbers, not as a 3-D volume."
    )
    return Study(
        pixels=pixels,
        kind="frames",
        modality=first.modality,
        window=_window(first, pixels),
        description=f"{first.modality} frames {'x'.join(str(s) for s in pixels.shape)}",
        sources=tuple(h.path for h in ordered),
        warnings=(note,),
    )


def _check_same_size(headers: list[SliceHeader]) -> None:
    keys = {(h.rows, h.columns, h.bits_allocated) for h in headers}
    if len(keys) > 1:
        raise InconsistentSeries(
            "The files of this series have different image sizes, so they cannot form one "
            "volume; open the files separately.",
            path=headers[0].path,
        )


def plan_volume(headers: list[SliceHeader]) -> VolumePlan:
    """Sort slices along the normal and derive spacing, direction and geometry warnings.

    Raises `InconsistentSeries` for mixed orientations, mixed pixel spacing, an invalid
    orientation or two different images at the same position.
    """
    first = headers[0]
    iops = np.array([h.orientation for h in headers], dtype=np.float64)
    if np.abs(iops - iops[0]).max() > _IOP_TOLERANCE:
        raise InconsistentSeries(
            "The slices of this series are not all oriented the same way, so they cannot form "
            "one volume; the folder may mix a scout image with the scan.",
            path=first.path,
        )
    row_dir, col_dir = _unit(iops[0, :3]), _unit(iops[0, 3:])
    if row_dir is None or col_dir is None or abs(float(row_dir @ col_dir)) > 1e-2:
        raise InconsistentSeries(
            "The slice orientation stored in this series is invalid, so the volume cannot be "
            "built.",
            path=first.path,
        )
    normal = np.cross(row_dir, col_dir)
    positions = np.array([h.position for h in headers], dtype=np.float64)
    order = np.argsort(positions @ normal, kind="stable")
    ordered = [headers[i] for i in order]
    positions = positions[order]
    ordered, positions, notes = _drop_duplicates(ordered, positions, normal)
    along = positions @ normal
    steps = np.diff(along)
    notes += _spacing_notes(steps)
    slice_spacing = float(np.median(steps)) if steps.size else 1.0
    notes += _shear_notes(positions, normal)
    pixel_spacing = _pixel_spacing(ordered, notes)
    axes = np.stack([normal, col_dir, row_dir], axis=1)  # columns: slices, rows, cols
    return VolumePlan(
        headers=tuple(ordered),
        spacing=(slice_spacing, *pixel_spacing),
        direction=tuple((float(r[0]), float(r[1]), float(r[2])) for r in axes),
        origin=(float(positions[0, 0]), float(positions[0, 1]), float(positions[0, 2])),
        warnings=tuple(notes),
    )


def _unit(v: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-6 else None


def _drop_duplicates(
    ordered: list[SliceHeader], positions: np.ndarray, normal: np.ndarray
) -> tuple[list[SliceHeader], np.ndarray, list[str]]:
    """Drop extra copies of one instance; refuse two different images at one position."""
    along = positions @ normal
    steps = np.diff(along)
    positive = steps[steps > 1e-6]
    tol = 0.05 * float(np.median(positive)) if positive.size else 1e-4
    keep = [0]
    copies = 0
    for i in range(1, len(ordered)):
        if along[i] - along[keep[-1]] > tol:
            keep.append(i)
            continue
        if not ordered[i].sop_uid or ordered[i].sop_uid != ordered[keep[-1]].sop_uid:
            raise InconsistentSeries(
                "Two different images of this series lie at the same slice position (it may "
                "mix several acquisitions), so they cannot form one volume.",
                path=ordered[i].path,
            )
        copies += 1
    notes = []
    if copies:
        notes.append(f"{copies} duplicate copies of slices were found in the folder and ignored.")
    return [ordered[i] for i in keep], positions[keep], notes


def _spacing_notes(steps: np.ndarray) -> list[str]:
    if steps.size < 2:
        return []
    median = float(np.median(steps))
    notes = []
    gaps = steps > 1.5 * median
    if gaps.any():
        missing = int(sum(max(round(g / median) - 1, 1) for g in steps[gaps]))
        what = "1 slice is" if missing == 1 else f"{missing} slices are"
        notes.append(
            f"About {what} missing from this series (gaps in the slice positions); distances "
            "across the gaps are wrong."
        )
    regular = steps[~gaps]
    tol = max(1e-4, min(0.01, 0.05 * median))
    if regular.size and float(regular.max() - regular.min()) > tol:
        notes.append(
            f"The slice spacing varies from {regular.min():.3g} to {regular.max():.3g} mm; the "
            f"volume assumes {median:.3g} mm, so distances along the slice axis are approximate."
        )
    return notes


def _shear_notes(positions: np.ndarray, normal: np.ndarray) -> list[str]:
    rel = positions - positions[0]
    along = rel @ normal
    drift = np.linalg.norm(rel - np.outer(along, normal), axis=1)
    span = float(along[-1]) if along.size else 0.0
    if span <= 0 or float(drift.max()) <= 0.01:
        return []
    angle = math.degrees(math.atan2(float(drift[-1]), span))
    if angle < _SHEAR_DEGREES and float(drift.max()) < 0.1:
        return []
    return [
        f"The slices are sheared (gantry tilt of about {angle:.1f} degrees); the volume is "
        "shown without tilt correction, so shapes are slightly skewed."
    ]


def _pixel_spacing(ordered: list[SliceHeader], notes: list[str]) -> tuple[float, float]:
    spacings = {h.pixel_spacing for h in ordered}
    if None in spacings:
        notes.append("The pixel spacing is missing; 1 mm per pixel is assumed.")
        return 1.0, 1.0
    values = np.array(list(spacings), dtype=np.float64)
    if np.abs(values - values[0]).max() > 1e-3:
        raise InconsistentSeries(
            "The slices of this series have different pixel sizes, so they cannot form one volume.",
            path=ordered[0].path,
        )
    return float(values[0][0]), float(values[0][1])


def _window(first: SliceHeader, pixels: np.ndarray) -> tuple[float, float]:
    step = max(1, pixels.shape[0] // 16)
    sample = np.ascontiguousarray(pixels[::step, ::4, ::4])
    return default_window(first.dataset, sample)


def _describe(modality: str, shape: tuple[int, ...], spacing: tuple[float, ...]) -> str:
    dims = "x".join(str(s) for s in shape)
    return f"{modality} volume {dims}, {min(spacing):.2g} mm"
