"""Single DICOM files: modality units, dtypes, colour, MONOCHROME1, geometry, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, EnhancedCTImageStorage

from sos_core.errors import CorruptFile, NotAnImage
from sos_core.imaging import open_study
from sos_core.imaging.pixels import (
    modality_transform,
    smallest_exact_dtype,
    stored_range,
    to_modality_units,
)

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _raw(name: str) -> tuple[np.ndarray, Dataset]:
    ds = pydicom.dcmread(get_testdata_file(name))
    return ds.pixel_array, ds


def _luma(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return np.rint(0.299 * r + 0.587 * g + 0.114 * b)


# --- dtype rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "integral", "signed", "expected"),
    [
        (0, 255, True, False, np.uint8),
        (-1, 100, True, False, np.int8),
        (0, 256, True, False, np.uint16),
        (-1024, 3071, True, False, np.int16),
        (0, 3071, True, True, np.int16),
        (-40000, 10, True, False, np.int32),
        (0, 70000, True, False, np.uint32),
        (0.0, 1.0, False, False, np.float32),
    ],
)
def test_smallest_exact_dtype(lo, hi, integral, signed, expected) -> None:
    assert smallest_exact_dtype(lo, hi, integral=integral, signed=signed) == np.dtype(expected)


def test_transform_writes_into_a_given_slice_and_refuses_a_too_small_dtype(build_ds) -> None:
    raw = np.array([[0, 4095], [100, 2000]], dtype=np.uint16)
    ds = build_ds(raw, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024)
    t = modality_transform(ds)
    dtype = t.output_dtype(*stored_range(ds))
    assert dtype == np.int16
    volume = np.zeros((2, 2, 2), dtype=dtype)
    t.apply(raw, dtype=dtype, out=volume[1])
    np.testing.assert_array_equal(volume[1], raw.astype(np.int32) - 1024)
    with pytest.raises(ValueError, match="too small"):
        to_modality_units(raw, ds, dtype=np.dtype(np.uint8))


# --- monochrome conversions ----------------------------------------------------------------


def test_ct_rescale_gives_int16_hounsfield_units() -> None:
    raw, ds = _raw("CT_small.dcm")
    study = open_study(get_testdata_file("CT_small.dcm"))
    assert study.kind == "image"
    assert study.modality == "CT"
    assert study.pixels.dtype == np.int16
    expected = raw.astype(np.int64) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    np.testing.assert_array_equal(study.pixels, expected)
    assert study.pixels.min() < 0  # real HU: air and fat below zero
    assert "WindowCenter" not in ds
    assert study.window[1] > 0
    assert study.spacing == tuple(float(v) for v in ds.PixelSpacing)
    assert study.origin == tuple(float(v) for v in ds.ImagePositionPatient)
    assert not study.pixels.flags.writeable


def test_12_bit_unsigned_ct_with_intercept_is_int16(write_dicom) -> None:
    raw = np.array([[0, 1024], [3000, 4095]], dtype=np.uint16)
    path = write_dicom(raw, modality="CT", bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024)
    study = open_study(path)
    assert study.pixels.dtype == np.int16
    np.testing.assert_array_equal(study.pixels, [[-1024, 0], [1976, 3071]])


def test_signed_16_bit_mr_stays_int16_and_exact() -> None:
    raw, ds = _raw("MR_small.dcm")
    assert ds.PixelRepresentation == 1
    study = open_study(get_testdata_file("MR_small.dcm"))
    assert study.pixels.dtype == np.int16
    np.testing.assert_array_equal(study.pixels, raw)


def test_signed_values_below_zero_survive(write_dicom) -> None:
    raw = np.array([[-2000, -1], [0, 32767]], dtype=np.int16)
    study = open_study(write_dicom(raw, modality="MR"))
    assert study.pixels.dtype == np.int16
    np.testing.assert_array_equal(study.pixels, raw)


def test_8_bit_unsigned_stays_uint8(write_dicom) -> None:
    raw = np.arange(256, dtype=np.uint8).reshape(16, 16)
    study = open_study(write_dicom(raw, modality="OT"))
    assert study.pixels.dtype == np.uint8
    np.testing.assert_array_equal(study.pixels, raw)


def test_non_integer_slope_gives_float32(write_dicom) -> None:
    raw = np.array([[0, 1], [2, 4095]], dtype=np.uint16)
    study = open_study(write_dicom(raw, bits_stored=12, RescaleSlope=0.5, RescaleIntercept=-3))
    assert study.pixels.dtype == np.float32
    np.testing.assert_allclose(study.pixels, raw * 0.5 - 3)


def test_modality_lut_sequence_is_applied(write_dicom) -> None:
    raw = np.array([[0, 1], [2, 3]], dtype=np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.add_new(0x00283006, "US", [10, 20, 30, 4000])  # LUT Data, VR ambiguous: say US
    item.ModalityLUTType = "HU"
    study = open_study(write_dicom(raw, ModalityLUTSequence=Sequence([item])))
    np.testing.assert_array_equal(study.pixels, [[10, 20], [30, 4000]])


def test_monochrome1_is_inverted_so_bone_is_bright(write_dicom) -> None:
    # In MONOCHROME1 low stored values are shown white: the bone here is stored as 100.
    raw = np.full((8, 8), 3900, dtype=np.uint16)
    raw[2:6, 2:6] = 100
    path = write_dicom(
        raw, modality="CR", photometric="MONOCHROME1", bits_stored=12,
        WindowCenter=1000, WindowWidth=500,
    )  # fmt: skip
    study = open_study(path)
    np.testing.assert_array_equal(study.pixels, 4095 - raw.astype(np.int64))
    assert study.pixels[3, 3] > study.pixels[0, 0]  # bone brighter than background
    assert study.window == (4095.0 - 1000.0, 500.0)  # the window is mirrored with the pixels
    assert any("MONOCHROME1" in w for w in study.warnings)


def test_real_monochrome1_cr_with_fractional_slope() -> None:
    # pydicom ships this CR under dicomdirtests/; find it by name.
    path = next(Path(f) for f in get_testdata_files() if Path(f).name == "6154")
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array
    study = open_study(path)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    expected = slope * (4095 - raw.astype(np.float64)) + intercept
    assert study.pixels.dtype == np.float32
    np.testing.assert_allclose(study.pixels, expected, rtol=1e-6)
    assert any("MONOCHROME1" in w for w in study.warnings)


# --- colour --------------------------------------------------------------------------------


def test_palette_colour_becomes_grey_with_a_warning() -> None:
    raw, ds = _raw("examples_palette.dcm")
    study = open_study(get_testdata_file("examples_palette.dcm"))
    assert study.pixels.shape == raw.shape
    np.testing.assert_allclose(study.pixels, _luma(apply_color_lut(raw, ds)), atol=1)
    assert any("palette colour" in w and "grey" in w for w in study.warnings)


def test_rgb_becomes_grey_with_a_warning() -> None:
    raw, _ = _raw("examples_rgb_color.dcm")
    study = open_study(get_testdata_file("examples_rgb_color.dcm"))
    assert study.pixels.dtype == np.uint8
    np.testing.assert_allclose(study.pixels, _luma(raw), atol=1)
    assert any("RGB colour" in w for w in study.warnings)


def test_ybr_multiframe_ultrasound_is_a_grey_frame_stack() -> None:
    raw, _ = _raw("examples_ybr_color.dcm")  # pydicom converts YBR to RGB
    study = open_study(get_testdata_file("examples_ybr_color.dcm"))
    assert study.kind == "frames"
    assert study.shape == raw.shape[:3]
    np.testing.assert_allclose(study.pixels, _luma(raw), atol=1)
    assert any("YBR colour" in w for w in study.warnings)


# --- multi-frame geometry ------------------------------------------------------------------


def _enhanced_ct(build_ds, raw: np.ndarray, z: list[float], intercepts: list[int]) -> Dataset:
    frames = []
    for zi, intercept in zip(z, intercepts, strict=True):
        item = Dataset()
        pos, trans = Dataset(), Dataset()
        pos.ImagePositionPatient = [-5.0, -6.0, zi]
        trans.RescaleSlope, trans.RescaleIntercept, trans.RescaleType = 1, intercept, "HU"
        item.PlanePositionSequence = Sequence([pos])
        item.PixelValueTransformationSequence = Sequence([trans])
        frames.append(item)
    shared, measures, orient = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [0.4, 0.5], 1.5
    orient.ImageOrientationPatient = AXIAL
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orient])
    return build_ds(
        raw, modality="CT", bits_stored=12, sop_class=EnhancedCTImageStorage,
        SharedFunctionalGroupsSequence=Sequence([shared]),
        PerFrameFunctionalGroupsSequence=Sequence(frames),
    )  # fmt: skip


def test_enhanced_ct_frames_are_sorted_along_the_normal(build_ds, tmp_path) -> None:
    raw = np.stack([np.full((3, 4), 100 * k, dtype=np.uint16) for k in range(4)])
    z = [3.0, 0.0, 4.5, 1.5]  # stored order != spatial order
    intercepts = [-1024, -1000, -1024, -1024]  # frame 1 rescaled differently
    path = tmp_path / "enhanced.dcm"
    _enhanced_ct(build_ds, raw, z, intercepts).save_as(path, enforce_file_format=True)
    study = open_study(path)
    assert study.kind == "volume"
    order = np.argsort(z)
    expected = np.stack([raw[i].astype(np.int64) + intercepts[i] for i in order])
    np.testing.assert_array_equal(study.pixels, expected)
    assert study.pixels.dtype == np.int16
    assert study.spacing == pytest.approx((1.5, 0.4, 0.5))
    assert study.origin == pytest.approx((-5.0, -6.0, 0.0))
    np.testing.assert_allclose(study.direction, [[0, 0, 1], [0, 1, 0], [1, 0, 0]], atol=1e-9)


def test_frames_sharing_one_position_stay_a_frame_stack(build_ds, tmp_path) -> None:
    raw = np.zeros((3, 2, 2), dtype=np.uint16)
    path = tmp_path / "phases.dcm"
    _enhanced_ct(build_ds, raw, [0.0, 0.0, 0.0], [0, 0, 0]).save_as(path)
    assert open_study(path).kind == "frames"


def test_multiframe_ct_with_slice_spacing_is_a_volume(write_dicom) -> None:
    raw = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    path = write_dicom(
        raw, modality="CT", sop_class=CTImageStorage, PixelSpacing=[0.3, 0.3],
        SpacingBetweenSlices=0.6, ImageOrientationPatient=AXIAL,
        ImagePositionPatient=[0.0, 0.0, 0.0],
    )  # fmt: skip
    study = open_study(path)
    assert study.kind == "volume"
    assert study.spacing == pytest.approx((0.6, 0.3, 0.3))
    assert any("not recorded per frame" in w for w in study.warnings)


def test_multiframe_radiograph_without_positions_is_frames(write_dicom) -> None:
    raw = np.zeros((3, 4, 5), dtype=np.uint8)
    study = open_study(write_dicom(raw, modality="XA", PixelSpacing=[0.2, 0.2]))
    assert study.kind == "frames"
    assert study.spacing == (0.0, 0.2, 0.2)
    assert study.direction is None


def test_rt_dose_grid_is_a_volume_with_offset_spacing() -> None:
    ds = pydicom.dcmread(get_testdata_file("rtdose.dcm"))
    study = open_study(get_testdata_file("rtdose.dcm"))
    assert study.kind == "volume"
    steps = np.diff(np.asarray(ds.GridFrameOffsetVector, dtype=float))
    assert study.spacing[0] == pytest.approx(abs(float(np.median(steps))))
    assert study.spacing[1:] == tuple(float(v) for v in ds.PixelSpacing)


# --- spacing, window, description ----------------------------------------------------------


def test_imager_pixel_spacing_is_used_and_named(write_dicom) -> None:
    raw = np.zeros((4, 4), dtype=np.uint16)
    study = open_study(write_dicom(raw, modality="DX", ImagerPixelSpacing=[0.15, 0.14]))
    assert study.spacing == (0.15, 0.14)
    assert any("Imager Pixel Spacing" in w for w in study.warnings)
    both = write_dicom(
        raw, name="both.dcm", modality="DX", ImagerPixelSpacing=[0.15, 0.15],
        PixelSpacing=[0.1, 0.1],
    )  # fmt: skip
    study = open_study(both)
    assert study.spacing == (0.1, 0.1)
    assert not any("Imager" in w for w in study.warnings)


def test_first_of_several_header_windows_is_used(write_dicom) -> None:
    raw = np.zeros((4, 4), dtype=np.int16)
    path = write_dicom(raw, WindowCenter=[40, 300], WindowWidth=[400, 1500])
    assert open_study(path).window == (40.0, 400.0)


def test_voi_lut_sequence_gives_an_approximate_window(write_dicom) -> None:
    item = Dataset()
    item.LUTDescriptor = [256, 100, 8]
    item.add_new(0x00283006, "US", list(range(256)))
    raw = np.zeros((4, 4), dtype=np.uint16)
    study = open_study(write_dicom(raw, VOILUTSequence=Sequence([item])))
    assert study.window == (228.0, 256.0)
    assert any("VOI lookup table" in w for w in study.warnings)


def test_window_falls_back_to_percentiles(write_dicom) -> None:
    raw = np.linspace(0, 1000, 10_000).astype(np.uint16).reshape(100, 100)
    center, width = open_study(write_dicom(raw)).window
    assert 450 < center < 550
    assert 950 < width <= 1000


def test_description_is_short_and_de_identified(write_dicom, canaries) -> None:
    raw = np.zeros((5, 7), dtype=np.uint16)
    study = open_study(write_dicom(raw, modality="CT", PixelSpacing=[0.5, 0.25]))
    assert study.description == "CT image 5x7, 0.5 x 0.25 mm"
    shown = " ".join([study.description, *study.warnings, *(s.description for s in study.series)])
    for canary in canaries:
        assert canary not in shown
    assert len(study.series) == 1
    assert study.series[0].key not in shown


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm"])
def test_dicom_without_pixels_is_not_an_image(name: str) -> None:
    with pytest.raises(NotAnImage, match="without an image"):
        open_study(get_testdata_file(name))


@pytest.mark.parametrize("content", [b"", b"hello world\n" * 20, bytes(range(256)) * 4])
def test_non_dicom_bytes_are_not_an_image(tmp_path, content: bytes) -> None:
    path = tmp_path / "upload.dcm"
    path.write_bytes(content)
    with pytest.raises(NotAnImage) as info:
        open_study(path)
    assert str(tmp_path) not in str(info.value)  # base name only
    assert "upload.dcm" in str(info.value)


def test_truncated_pixel_data_is_corrupt() -> None:
    with pytest.raises(CorruptFile):
        open_study(get_testdata_file("MR_truncated.dcm"))


def test_file_without_meta_header_still_loads(build_ds, tmp_path) -> None:
    raw = np.arange(12, dtype=np.uint16).reshape(3, 4)
    ds = build_ds(raw)
    del ds.file_meta
    path = tmp_path / "nometa.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(open_study(path).pixels, raw)
