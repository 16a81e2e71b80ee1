"""pydicom-written CT series for the folder, series and reformat tests (synthetic data only).

Files are named by a shuffled permutation so that name order never equals slice order, and
InstanceNumber is scrambled too: only ImagePositionPatient along the slice normal is right.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
"""ImageOrientationPatient of an axial slice: rows run +x (to the left), columns +y (back)."""


def ct_dataset(
    pixels: np.ndarray,
    *,
    position: Sequence[float],
    orientation: Sequence[float] = AXIAL,
    spacing: tuple[float, float] = (0.5, 0.5),
    series_uid: str,
    instance: int = 1,
    intercept: float = -1024.0,
    modality: str = "CT",
    series_number: int = 1,
    bits_stored: int = 12,
    slope: float = 1.0,
) -> Dataset:
    """One CT Image Storage slice; `pixels` are stored values (uint16 or int16)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = "CANARY^PATIENT"
    ds.PatientID = "CANARY-ID"
    ds.StudyDate = "19990101"
    ds.StudyTime = "120000"
    ds.StudyID = "CANARY-STUDY"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "CANARY series description"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [spacing[0], spacing[1]]
    ds.SliceThickness = 1.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.WindowCenter = 400
    ds.WindowWidth = 2000
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    return ds


def write_series(
    folder: Path,
    volume: np.ndarray,
    *,
    positions: Sequence[float] | None = None,
    slice_spacing: float = 1.0,
    spacing: tuple[float, float] = (0.5, 0.5),
    orientation: Sequence[float] = AXIAL,
    orientations: Sequence[Sequence[float]] | None = None,
    origin: Sequence[float] = (-10.0, -20.0, 30.0),
    series_uid: str | None = None,
    seed: int = 0,
    prefix: str = "IM",
    series_number: int = 1,
    shear: Sequence[float] = (0.0, 0.0, 0.0),
    **slice_options: Any,
) -> tuple[str, list[Path]]:
    """Write `volume` (slices, rows, cols; stored values) as one series with shuffled names.

    positions: offsets (mm) along the slice normal per slice (default: even `slice_spacing`).
    shear: extra in-space offset per slice index (mm), to fake a gantry tilt.
    slice_options: passed to `ct_dataset` (intercept, slope, bits_stored).
    Returns the SeriesInstanceUID and the paths in slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid()
    rng = np.random.default_rng(seed)
    n = volume.shape[0]
    offsets = list(positions) if positions is not None else [i * slice_spacing for i in range(n)]
    names = rng.permutation(n)
    instances = rng.permutation(n) + 1
    paths: list[Path] = []
    for i in range(n):
        iop = orientations[i] if orientations is not None else orientation
        row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
        normal = np.cross(row_dir, col_dir)
        pos = np.asarray(origin, float) + offsets[i] * normal + i * np.asarray(shear, float)
        ds = ct_dataset(
            volume[i],
            position=pos,
            orientation=iop,
            spacing=spacing,
            series_uid=uid,
            instance=int(instances[i]),
            series_number=series_number,
            **slice_options,
        )
        path = folder / f"{prefix}{names[i]:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return uid, paths


def ramp_volume(n: int = 8, rows: int = 16, cols: int = 20) -> np.ndarray:
    """Stored values whose slice index is readable from the pixels: value = 100*k + row + col."""
    k, r, c = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    return (100 * k + r + c).astype(np.uint16)
