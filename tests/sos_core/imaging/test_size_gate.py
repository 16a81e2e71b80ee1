"""DC-2: the pixel budget and the element-length pre-scan refuse lying files before any read."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from sos_core.errors import CorruptFile, ImageTooLarge, NotAnImage
from sos_core.imaging import LoadLimits, open_study
from sos_core.imaging.guards import (
    MAX_SEQUENCE_DEPTH,
    check_pixel_budget,
    open_bounded,
    prescan_element_lengths,
)

FIFTY_MB = 50 * 1024**2


def _bomb_dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = "1.2.3.4"
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = 9999
    ds.Rows = ds.Columns = 65535
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = b"\0" * 8
    return ds


def _write_bomb(path: Path, *, with_meta: bool) -> Path:
    ds = _bomb_dataset()
    if with_meta:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.save_as(path, enforce_file_format=True)
    else:  # bare dataset, no preamble: the smallest file that can claim this size
        ds.save_as(path, implicit_vr=False, little_endian=True)
    return path


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every access to pydicom's pixel decoding entry point."""
    calls: list[int] = []
    original = pydicom.dataset.Dataset.pixel_array

    def counted(self: Dataset) -> np.ndarray:
        calls.append(1)
        return original.fget(self)

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(counted))
    return calls


@pytest.mark.req("DC-2")
@pytest.mark.parametrize("with_meta", [False, True])
def test_decompression_bomb_header_is_refused_before_decoding(
    tmp_path, measure, decode_calls, with_meta: bool
) -> None:
    path = _write_bomb(tmp_path / "bomb.dcm", with_meta=with_meta)
    assert path.stat().st_size < 500
    with measure() as cost, pytest.raises(ImageTooLarge) as info:
        open_study(path)
    assert cost.seconds < 1.0
    assert cost.peak_bytes < FIFTY_MB
    assert decode_calls == []
    assert "bomb.dcm" in str(info.value)
    assert "GiB" in str(info.value)


def _huge_element_file(tmp_path: Path, where: str) -> Path:
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    at = raw.find(b"\xe0\x7f\x10\x00OW")  # the Pixel Data element header
    if where == "pixel data":
        data = raw[: at + 8] + struct.pack("<L", 0x7FFFFFF0) + raw[at + 12 :]
    else:  # a private OB element in front of the pixels that claims ~2 GiB
        bogus = struct.pack("<HH2sHL", 0x0029, 0x1010, b"OB", 0, 0x7FFFFFF0) + b"x" * 64
        data = raw[:at] + bogus
    path = tmp_path / "huge_element.dcm"
    path.write_bytes(data)
    return path


@pytest.mark.req("DC-2")
@pytest.mark.parametrize("where", ["pixel data", "private element"])
def test_element_longer_than_the_file_is_refused_cheaply(tmp_path, measure, where) -> None:
    path = _huge_element_file(tmp_path, where)
    with measure() as cost, pytest.raises(CorruptFile):
        open_study(path)
    assert cost.seconds < 1.0
    # Without the pre-scan pydicom allocates the declared 2 GiB before noticing.
    assert cost.peak_bytes < FIFTY_MB


@pytest.mark.req("DC-2")
def test_budget_is_the_exact_product() -> None:
    header = {"Rows": 512, "Columns": 400, "NumberOfFrames": 3, "SamplesPerPixel": 1}
    limits = LoadLimits(max_pixel_bytes=512 * 400 * 3 * 2)
    assert (
        check_pixel_budget({**header, "BitsAllocated": 12}, Path("a"), limits)
        == limits.max_pixel_bytes
    )
    assert check_pixel_budget({**header, "BitsAllocated": 1}, Path("a"), limits) == 512 * 400 * 3
    with pytest.raises(ImageTooLarge):
        check_pixel_budget({**header, "BitsAllocated": 32}, Path("a"), limits)


@pytest.mark.req("DC-2")
@pytest.mark.parametrize(
    "header",
    [
        {"Columns": 4, "BitsAllocated": 16},
        {"Rows": 0, "Columns": 4, "BitsAllocated": 16},
        {"Rows": 4, "Columns": 4, "BitsAllocated": 16, "NumberOfFrames": "1A"},
        {"Rows": 4, "Columns": 4},
    ],
)
def test_budget_refuses_missing_or_invalid_sizes(header) -> None:
    with pytest.raises(CorruptFile):
        check_pixel_budget(header, Path("x.dcm"), LoadLimits())


@pytest.mark.req("DC-2")
def test_configured_cap_is_honoured_through_open_study() -> None:
    path = get_testdata_file("CT_small.dcm")
    exact = 128 * 128 * 2
    assert open_study(path, limits=LoadLimits(max_pixel_bytes=exact)).shape == (128, 128)
    with pytest.raises(ImageTooLarge):
        open_study(path, limits=LoadLimits(max_pixel_bytes=exact - 1))


def _explicit_sq_open(tag: tuple[int, int]) -> bytes:
    return struct.pack("<HH2sHL", *tag, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF
    )


_CLOSE = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def _with_inserted(tmp_path: Path, insert: bytes, name: str = "nested.dcm") -> Path:
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    at = raw.find(b"\xe0\x7f\x10\x00OW")
    path = tmp_path / name
    path.write_bytes(raw[:at] + insert + raw[at:])
    return path


@pytest.mark.req("DC-2")
def test_prescan_limits_sequence_depth(tmp_path) -> None:
    limits = LoadLimits()
    tag = (0x0040, 0xA730)
    ok = _with_inserted(tmp_path, _explicit_sq_open(tag) * 8 + _CLOSE * 8, "ok.dcm")
    assert prescan_element_lengths(ok, limits) is True
    n = MAX_SEQUENCE_DEPTH + 1
    deep = _with_inserted(tmp_path, _explicit_sq_open(tag) * n + _CLOSE * n, "deep.dcm")
    with pytest.raises(CorruptFile, match="nests"):
        prescan_element_lengths(deep, limits)


@pytest.mark.req("DC-2")
def test_prescan_reports_pixel_presence_and_tolerates_item_overrun() -> None:
    limits = LoadLimits()
    assert prescan_element_lengths(Path(get_testdata_file("CT_small.dcm")), limits) is True
    assert prescan_element_lengths(Path(get_testdata_file("rtplan.dcm")), limits) is False
    # Its last directory item claims 24 bytes more than the file holds; pydicom reads it.
    nooffset = next(Path(f) for f in get_testdata_files() if f.endswith("DICOMDIR-nooffset"))
    assert prescan_element_lengths(nooffset, limits) is False


@pytest.mark.req("DC-2")
def test_prescan_refuses_a_fragment_longer_than_the_file(tmp_path) -> None:
    raw = Path(get_testdata_file("MR_small_RLE.dcm")).read_bytes()
    at = raw.find(b"\xfe\xff\x00\xe0", raw.find(b"\xe0\x7f\x10\x00OB") + 12)  # offset table
    second = raw.find(b"\xfe\xff\x00\xe0", at + 8)  # first fragment
    path = tmp_path / "fragment.dcm"
    path.write_bytes(raw[: second + 4] + struct.pack("<L", 0x7FFFFFF0) + raw[second + 8 :])
    with pytest.raises(CorruptFile):
        prescan_element_lengths(path, LoadLimits())


@pytest.mark.req("DC-2")
def test_deflate_bomb_is_refused_while_inflating(tmp_path, measure) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3"
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    buf = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(pydicom.filebase.DicomFileLike(buf), meta)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(b"\0" * (16 * 1024**2)) + deflater.flush()
    path = tmp_path / "deflated.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + buf.getvalue() + body)
    limits = LoadLimits(max_pixel_bytes=4 * 1024**2, max_header_bytes=1024**2)
    with measure() as cost, pytest.raises(ImageTooLarge):
        open_study(path, limits=limits)
    assert cost.peak_bytes < FIFTY_MB


def test_prescan_refuses_text_and_empty_files(tmp_path) -> None:
    for content in (b"", b"SIMPLE  =                    T" + b" " * 200):
        path = tmp_path / "x.dcm"
        path.write_bytes(content)
        with pytest.raises(NotAnImage):
            prescan_element_lengths(path, LoadLimits())


@pytest.mark.req("DC-2")
def test_bounded_reader_caps_what_pydicom_can_allocate(tmp_path, measure) -> None:
    # Second line of defence, tested without the pre-scan: pydicom itself reading a file whose
    # pixel element claims ~2 GiB allocates only what the file holds.
    path = _huge_element_file(tmp_path, "pixel data")
    with measure() as cost, open_bounded(path) as fh:
        ds = pydicom.dcmread(fh)
    assert len(ds.PixelData) < path.stat().st_size
    assert cost.peak_bytes < FIFTY_MB
    with open_bounded(path) as fh:
        fh.seek(path.stat().st_size - 4)
        assert len(fh.read(1 << 30)) == 4


@pytest.mark.req("DC-2")
def test_prescan_resumes_where_pydicom_does_after_a_short_sequence(tmp_path) -> None:
    # A defined-length sequence that declares fewer bytes than its item holds: pydicom reads
    # the sequence as one value and goes on at its declared end, which here falls on bytes
    # that read as an element with an invalid VR (read as implicit) claiming ~269 MB.
    trap = struct.pack("<HH", 0x0041, 0x0010) + b"\x11\x00\x10\x10" + b"\0" * 8
    element = struct.pack("<HH2sH", 0x0040, 0xA160, b"LO", len(trap)) + trap
    item = struct.pack("<HHL", 0xFFFE, 0xE000, len(element)) + element
    sequence = struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 16) + item
    path = _with_inserted(tmp_path, sequence, "short_sq.dcm")
    with pytest.raises(CorruptFile):
        prescan_element_lengths(path, LoadLimits())


@pytest.mark.req("DC-2")
def test_rle_declaring_more_pixels_than_it_can_hold_is_refused(tmp_path, decode_calls) -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    assert open_study(get_testdata_file("MR_small_RLE.dcm")).shape == (64, 64)
    ds.Rows = 4096  # 4096 x 64 x 2 bytes from ~6 kB of RLE: more than 64-fold
    ds.save_as(tmp_path / "rle.dcm")
    decode_calls.clear()
    with pytest.raises(CorruptFile):
        open_study(tmp_path / "rle.dcm")
    assert len(decode_calls) == 0
