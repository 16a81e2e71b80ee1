"""The automatic mid-sagittal plane on synthetic heads whose symmetry plane is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sos_core.imaging import Study, open_study
from sos_core.imaging.midsagittal import find_midsagittal, read_midsagittal
from sos_core.imaging.reformat import sagittal_slice
from tests.sos_core.imaging.series_fixtures import write_series

AXIAL_DIRECTION = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
SAGITTAL_IOP = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def synthetic_head(
    shape: tuple[int, int, int] = (72, 96, 112),
    centre_x: float = 56.0,
    yaw_deg: float = 0.0,
    roll_deg: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """A (z, y, x) HU volume of a head symmetric about a plane through (cz, cy, centre_x).

    The plane is x' = 0 in head coordinates, turned by `yaw_deg` about z and `roll_deg` about
    y; it has a skull shell, a brain, two orbits, a jaw and a midline plate, plus noise.
    """
    nz, ny, nx = shape
    cz, cy = nz / 2.0, ny / 2.0 + 4.0
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    yaw, roll = np.radians(yaw_deg), np.radians(roll_deg)
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    ry = np.array([[np.cos(roll), 0, np.sin(roll)], [0, 1, 0], [-np.sin(roll), 0, np.cos(roll)]])
    inverse = (rz @ ry).T
    d = np.stack([x - centre_x, y - cy, z - cz])
    ux, uy, uz = np.einsum("ij,jzyx->izyx", inverse, d)
    a, b, c = 0.36 * nx, 0.42 * ny, 0.42 * nz
    r = (ux / a) ** 2 + (uy / b) ** 2 + (uz / c) ** 2
    vol = np.full(shape, -1000.0, dtype=np.float32)
    vol[r < 1] = 40
    vol[(r < 1) & (r > 0.78)] = 1200
    orbit = (np.abs(ux) - 0.4 * a) ** 2 + (uy + 0.75 * b) ** 2 + (uz - 0.2 * c) ** 2
    vol[orbit < (0.16 * a) ** 2] = -900
    jaw = ((ux / (0.6 * a)) ** 2 + ((uy + 0.6 * b) / (0.4 * b)) ** 2 < 1) & (uz < -0.45 * c)
    vol[jaw & (uz > -0.8 * c)] = 1500
    vol[(np.abs(ux) < 1.5) & (uz < 0) & (np.abs(uy) < 0.3 * b) & (r < 1)] = 1800
    vol += np.random.default_rng(seed).normal(0, 30, shape).astype(np.float32)
    return np.clip(vol, -1024, 3071).astype(np.int16)


def _study(pixels: np.ndarray, direction: object = AXIAL_DIRECTION) -> Study:
    return Study(
        pixels=pixels,
        kind="volume",
        modality="CT",
        spacing=(1.0, 1.0, 1.0),
        direction=direction,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("centre_x", "yaw", "roll"),
    [(56.0, 0.0, 0.0), (74.5, 6.0, 4.0), (40.0, -8.0, 0.0), (66.0, 3.0, -6.0)],
)
def test_plane_found_within_2_mm(centre_x: float, yaw: float, roll: float) -> None:
    head = synthetic_head(centre_x=centre_x, yaw_deg=yaw, roll_deg=roll)
    found = find_midsagittal(_study(head))
    assert abs(found - centre_x) <= 2.0


def test_off_centre_head_is_not_the_middle_index() -> None:
    head = synthetic_head(centre_x=76.0, yaw_deg=5.0)
    found = find_midsagittal(_study(head))
    assert abs(found - 76) <= 2
    assert abs(found - head.shape[2] // 2) > 10


def test_left_right_along_the_slice_axis() -> None:
    head = synthetic_head(centre_x=44.0, roll_deg=5.0)
    # Array axes (x, z, y): slices run left, rows run up, columns run back.
    direction = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0))
    found = find_midsagittal(_study(np.ascontiguousarray(head.transpose(2, 0, 1)), direction))
    assert abs(found - 44) <= 2


def test_empty_volume_falls_back_to_the_middle() -> None:
    empty = np.full((10, 12, 15), -1000, dtype=np.int16)
    assert find_midsagittal(_study(empty)) == 7


def _matching_index(full: Study, image: Study) -> int:
    matches = [
        k
        for k in range(full.shape[2] if full.direction == AXIAL_DIRECTION else full.shape[0])
        if np.array_equal(sagittal_slice(full, k).pixels, image.pixels)
    ]
    assert len(matches) == 1
    return matches[0]


def test_fast_path_reads_the_same_slice_as_the_full_volume(tmp_path: Path) -> None:
    head = synthetic_head(shape=(100, 64, 80), centre_x=47.0, yaw_deg=4.0)
    write_series(tmp_path, (head.astype(np.int32) + 1024).astype(np.uint16), spacing=(1.0, 1.0))
    image = read_midsagittal(tmp_path)
    full = open_study(tmp_path)
    assert image.kind == "image"
    assert image.shape == (100, 64)
    assert image.spacing == (1.0, 1.0)
    assert image.pixels.dtype == full.pixels.dtype
    assert image.window == full.window
    assert abs(_matching_index(full, image) - 47) <= 2
    assert abs(find_midsagittal(full) - 47) <= 2


def test_fast_path_on_a_sagittal_series(tmp_path: Path) -> None:
    head = synthetic_head(shape=(48, 64, 72), centre_x=30.0)
    n = head.shape[2]
    # Slice i lies at x = n - 1 - i (the normal is -x); rows run +y, columns run -z.
    sagittal = head.transpose(2, 1, 0)[::-1, :, ::-1]
    stored = (sagittal.astype(np.int32) + 1024).astype(np.uint16)
    write_series(
        tmp_path, stored, orientation=SAGITTAL_IOP, spacing=(1.0, 1.0), origin=(n - 1, 0, 47)
    )
    image = read_midsagittal(tmp_path)
    full = open_study(tmp_path)
    index = _matching_index(full, image)
    assert abs((n - 1 - index) - 30) <= 2


def test_fast_path_returns_a_2d_study_unchanged(tmp_path: Path) -> None:
    head = synthetic_head(shape=(2, 32, 32))
    write_series(tmp_path, (head.astype(np.int32) + 1024).astype(np.uint16)[:1])
    image = read_midsagittal(tmp_path)  # one file: the single-file reader's 2-D image
    assert image.kind == "image"
