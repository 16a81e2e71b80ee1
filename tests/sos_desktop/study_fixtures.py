"""pydicom-written studies for the desktop tests (synthetic, fixed seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.sos_core.imaging.series_fixtures import ct_dataset


def head_volume(n: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Stored values (uint16, 12 bits) of an ellipsoid 'head', symmetric left-right."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(
        np.linspace(-1, 1, n), np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij"
    )
    head = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.95) ** 2 < 1.0
    vol = np.where(head, 1024 + 400, 24).astype(np.float64)
    vol += rng.normal(0, 5, vol.shape)
    return np.clip(vol, 0, 4095).astype(np.uint16)


def ct_slice(pixels: np.ndarray, z: float, series_uid: str, instance: int) -> Dataset:
    """One axial CT slice at height `z` mm (the imaging tests' builder, desktop geometry)."""
    return ct_dataset(pixels, position=(-10.0, -20.0, z), series_uid=series_uid, instance=instance)


def write_ct_series(
    folder: Path, *, n: int, rows: int, cols: int, seed: int = 0, prefix: str = "IM"
) -> Path:
    """An axial CT series of `n` slices (1 mm apart, 0.5 mm pixels) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    vol = head_volume(n, rows, cols, seed)
    uid = generate_uid()
    for k in range(n):
        ct_slice(vol[k], float(k), uid, n - k).save_as(
            folder / f"{prefix}{(k * 7919) % 10007:05d}.dcm", enforce_file_format=True
        )
    return folder


def write_truncated_dicom(path: Path) -> Path:
    """A CT file cut in the middle of its pixel data."""
    ds = ct_slice(head_volume(1, 64, 64)[0], 0.0, generate_uid(), 1)
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3000])
    return path
