"""Shared fixtures for the single-file imaging tests: pydicom-written files in tmp_path."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

CANARIES = ("CANARY^Jane", "CANARY-ID-42", "19700101", "CANARY Hospital", "CANARY-ACC")
"""Identifying values written into synthetic files; none may reach a description."""


def build_dataset(
    pixels: np.ndarray,
    *,
    modality: str = "OT",
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    sop_class: str = SecondaryCaptureImageStorage,
    **attributes: Any,
) -> Dataset:
    """A minimal image dataset holding `pixels` (frames first for 3-D monochrome input)."""
    colour = photometric in ("RGB", "YBR_FULL")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = CANARIES[0]
    ds.PatientID = CANARIES[1]
    ds.PatientBirthDate = CANARIES[2]
    ds.InstitutionName = CANARIES[3]
    ds.AccessionNumber = CANARIES[4]
    ds.StudyDate = CANARIES[2]
    frames_axis = pixels.ndim == (4 if colour else 3)
    if frames_axis:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[1:3] if frames_axis else pixels.shape[:2]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    return ds


@pytest.fixture
def write_dicom(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``write_dicom(pixels, name=..., **build_dataset kwargs) -> path``."""

    def _write(pixels: np.ndarray, *, name: str = "image.dcm", **kwargs: Any) -> Path:
        path = tmp_path / name
        build_dataset(pixels, **kwargs).save_as(path, enforce_file_format=True)
        return path

    return _write


@dataclass
class Cost:
    seconds: float = 0.0
    peak_bytes: int = 0


@contextmanager
def measured() -> Iterator[Cost]:
    """Wall time and tracemalloc peak of the block (numpy allocations are traced too)."""
    cost = Cost()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - start
        cost.peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


@pytest.fixture
def build_ds() -> Callable[..., Dataset]:
    """`build_dataset`, as a fixture (test modules do not import conftest)."""
    return build_dataset


@pytest.fixture
def measure() -> Callable[[], Any]:
    """`measured`, as a fixture: ``with measure() as cost: ...``."""
    return measured


@pytest.fixture
def canaries() -> tuple[str, ...]:
    return CANARIES
