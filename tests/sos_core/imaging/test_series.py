"""Series folders -> volumes: sorting along the normal, geometry warnings and errors, pixels."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import RLELossless

from sos_core.errors import (
    CorruptFile,
    ImageTooLarge,
    InconsistentSeries,
    NoImagesFound,
    SeriesNotChosen,
)
from sos_core.imaging import LoadLimits, open_study
from sos_core.imaging.series import open_folder
from tests.sos_core.imaging.series_fixtures import AXIAL, ct_dataset, ramp_volume, write_series

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows run +y (back), columns run -z (down)


def _expected(volume: np.ndarray) -> np.ndarray:
    return volume.astype(np.int32) - 1024


def test_shuffled_files_sort_along_the_normal(tmp_path: Path) -> None:
    volume = ramp_volume()
    _, paths = write_series(tmp_path, volume, slice_spacing=1.25, origin=(-10, -20, 30))
    study = open_study(tmp_path)
    assert study.kind == "volume"
    assert study.pixels.dtype == np.int16
    np.testing.assert_array_equal(study.pixels, _expected(volume))
    assert study.sources == tuple(paths)
    assert study.spacing == pytest.approx((1.25, 0.5, 0.5))
    assert study.direction == ((0, 0, 1), (0, 1, 0), (1, 0, 0))
    assert study.origin == pytest.approx((-10, -20, 30))
    assert study.window == (400.0, 2000.0)
    assert study.warnings == ()
    assert len(study.series) == 1
    assert study.series[0].n_files == volume.shape[0]
    assert "CANARY" not in study.description + study.series[0].description
    assert not study.pixels.flags.writeable


def test_name_and_instance_order_are_ignored(tmp_path: Path) -> None:
    volume = ramp_volume(n=6)
    # Positions run downwards along the normal: the last written slice is the first in space.
    write_series(tmp_path, volume, positions=[10, 8, 6, 4, 2, 0], seed=3)
    study = open_study(tmp_path)
    np.testing.assert_array_equal(study.pixels, _expected(volume[::-1]))
    assert study.spacing[0] == pytest.approx(2.0)


def test_non_axial_orientation_gives_direction_and_order(tmp_path: Path) -> None:
    volume = ramp_volume(n=5)
    write_series(tmp_path, volume, orientation=SAGITTAL, slice_spacing=0.8)
    study = open_study(tmp_path)
    direction = np.array(study.direction)
    # normal = rows x cols = (0,1,0) x (0,0,-1) = (-1, 0, 0): slices run to the patient's right.
    np.testing.assert_allclose(direction[:, 0], (-1, 0, 0))
    np.testing.assert_allclose(direction[:, 1], (0, 0, -1))
    np.testing.assert_allclose(direction[:, 2], (0, 1, 0))
    np.testing.assert_array_equal(study.pixels, _expected(volume))


def test_values_match_pydicom_per_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 1 << 16, size=(4, 8, 9), dtype=np.uint16)  # junk in high bits
    write_series(tmp_path, volume)
    study = open_study(tmp_path)
    for i, path in enumerate(study.sources):
        ds = dcmread(path)
        expected = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        np.testing.assert_array_equal(study.pixels[i], expected)


@pytest.mark.parametrize(
    ("stored", "intercept", "slope", "dtype"),
    [
        ([-1000, 2000, 0], 0, 1, np.int16),  # signed, no rescale: int16 straight from disk
        ([0, 3000, 30000], -1024, 1, np.int16),  # signed with a rescale that still fits
        ([0, 3000, 32000], 1000, 1, np.int32),  # values that need a wider dtype
        ([0, 100, 1000], -1000, 2, np.int16),  # a whole-number slope
        ([0, 100, 1000], -1000.5, 1, np.float32),  # a fractional intercept
    ],
)
def test_signed_16_bit_series_use_the_smallest_exact_dtype(
    tmp_path: Path, stored: list[int], intercept: float, slope: float, dtype: type
) -> None:
    volume = np.array(stored, dtype=np.int16).reshape(3, 1, 1) * np.ones((1, 4, 5), np.int16)
    write_series(tmp_path, volume, intercept=intercept, slope=slope, bits_stored=16)
    study = open_study(tmp_path)
    assert study.pixels.dtype == dtype
    expected = volume.astype(np.float64) * slope + intercept
    np.testing.assert_array_equal(study.pixels, expected)


def test_compressed_slices_decode_like_uncompressed(tmp_path: Path) -> None:
    volume = ramp_volume(n=4)
    _, paths = write_series(tmp_path / "rle", volume)
    for path in paths:
        ds = dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)
    study = open_study(tmp_path / "rle")
    np.testing.assert_array_equal(study.pixels, _expected(volume))


def test_missing_slice_warns(tmp_path: Path) -> None:
    volume = ramp_volume(n=10)
    _, paths = write_series(tmp_path, volume)
    paths[4].unlink()
    study = open_study(tmp_path)
    assert study.shape[0] == 9
    assert any("1 slice is missing" in w for w in study.warnings)


def test_uneven_spacing_warns_with_the_range(tmp_path: Path) -> None:
    positions = [0.0, 1.0, 2.0, 3.3, 4.3, 5.3, 6.3]
    write_series(tmp_path, ramp_volume(n=7), positions=positions)
    study = open_study(tmp_path)
    warning = next(w for w in study.warnings if "spacing varies" in w)
    assert "from 1 to 1.3 mm" in warning
    assert study.spacing[0] == pytest.approx(1.0)


def test_gantry_tilt_warns(tmp_path: Path) -> None:
    write_series(tmp_path, ramp_volume(n=6), shear=(0.0, 0.2, 0.0))
    study = open_study(tmp_path)
    assert any("gantry tilt" in w for w in study.warnings)


def test_even_series_has_no_geometry_warning(tmp_path: Path) -> None:
    write_series(tmp_path, ramp_volume(n=6), slice_spacing=0.3)
    assert open_study(tmp_path).warnings == ()


def test_two_series_need_a_choice_and_open_by_key(tmp_path: Path) -> None:
    a, b = ramp_volume(n=5), ramp_volume(n=7, rows=12, cols=10)
    write_series(tmp_path, a, prefix="A", series_number=2, seed=1)
    write_series(tmp_path, b, prefix="B", series_number=5, seed=2)
    with pytest.raises(SeriesNotChosen) as info:
        open_study(tmp_path)
    choices = info.value.series
    assert [c.n_files for c in choices] == [5, 7]
    assert all("." not in c.key for c in choices)  # a digest, not the UID
    first = open_study(tmp_path, series=choices[0].key)
    second = open_study(tmp_path, series=choices[1].key)
    np.testing.assert_array_equal(first.pixels, _expected(a))
    np.testing.assert_array_equal(second.pixels, _expected(b))
    assert second.series == choices
    with pytest.raises(SeriesNotChosen):
        open_study(tmp_path, series="0123456789abcdef")


def test_mixed_orientation_is_inconsistent(tmp_path: Path) -> None:
    orientations = [AXIAL] * 4 + [SAGITTAL]
    write_series(tmp_path, ramp_volume(n=5), orientations=orientations)
    with pytest.raises(InconsistentSeries):
        open_study(tmp_path)


def test_mixed_sizes_are_inconsistent(tmp_path: Path) -> None:
    uid, _ = write_series(tmp_path, ramp_volume(n=4))
    odd = ct_dataset(np.zeros((8, 8), np.uint16), position=(-10, -20, 40), series_uid=uid)
    odd.save_as(tmp_path / "odd.dcm", enforce_file_format=True)
    with pytest.raises(InconsistentSeries):
        open_study(tmp_path)


def test_copy_of_a_slice_is_dropped_with_a_warning(tmp_path: Path) -> None:
    volume = ramp_volume(n=5)
    _, paths = write_series(tmp_path / "s", volume)
    shutil.copy(paths[2], tmp_path / "s" / "copy-of-slice.dcm")
    study = open_study(tmp_path / "s")
    np.testing.assert_array_equal(study.pixels, _expected(volume))
    assert any("duplicate" in w for w in study.warnings)


def test_two_images_at_one_position_are_inconsistent(tmp_path: Path) -> None:
    uid, _ = write_series(tmp_path, ramp_volume(n=4))
    other = ct_dataset(
        np.ones((16, 20), np.uint16), position=(-10, -20, 31), series_uid=uid, instance=99
    )
    other.save_as(tmp_path / "other.dcm", enforce_file_format=True)
    with pytest.raises(InconsistentSeries):
        open_study(tmp_path)


def test_images_without_position_become_frames(tmp_path: Path) -> None:
    _, paths = write_series(tmp_path, ramp_volume(n=3))
    for path in paths:
        ds = dcmread(path)
        del ds.ImagePositionPatient
        ds.save_as(path, enforce_file_format=True)
    study = open_study(tmp_path)
    assert study.kind == "frames"
    assert study.warnings
    assert "instance numbers" in study.warnings[0]


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(NoImagesFound) as info:
        open_study(tmp_path)
    assert tmp_path.name not in str(info.value)  # folder names may hold patient names


def test_volume_over_the_pixel_budget_is_refused(tmp_path: Path) -> None:
    write_series(tmp_path, ramp_volume(n=4))
    with pytest.raises(ImageTooLarge):
        open_folder(tmp_path, limits=LoadLimits(max_pixel_bytes=1000))


def test_truncated_slice_is_corrupt(tmp_path: Path) -> None:
    _, paths = write_series(tmp_path, ramp_volume(n=4))
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:-100])
    with pytest.raises(CorruptFile):
        open_study(tmp_path)


def test_memory_stays_under_twice_the_int16_size(tmp_path: Path) -> None:
    n, rows, cols = 48, 192, 192
    volume = np.tile(ramp_volume(n=1, rows=rows, cols=cols), (n, 1, 1))
    write_series(tmp_path, volume)
    int16_bytes = n * rows * cols * 2
    tracemalloc.start()
    try:
        study = open_study(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert study.pixels.nbytes == int16_bytes
    assert peak < 2 * int16_bytes
