"""DC-3: PNG / JPEG / TIFF cephalogram exports."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sos_core.errors import CorruptFile, ImageTooLarge, NotAnImage, ParameterError
from sos_core.imaging import LoadLimits, open_study
from sos_core.imaging.raster import read_raster

FIFTY_MB = 50 * 1024**2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">L", len(data)) + kind + data + struct.pack(">L", zlib.crc32(kind + data))


def _tiny_huge_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header for a width x height 8-bit grey image, with only a few rows of data."""
    header = struct.pack(">LLBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows)
    path.write_bytes(png + _chunk(b"IEND", b""))
    return path


def test_8_bit_grey_png_round_trips(tmp_path) -> None:
    arr = np.random.default_rng(1).integers(0, 256, (40, 30), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "ceph.png")
    study = open_study(tmp_path / "ceph.png")
    assert study.kind == "image"
    assert study.modality == "PNG"
    assert study.pixels.dtype == np.uint8
    np.testing.assert_array_equal(study.pixels, arr)
    assert study.spacing is None
    assert study.warnings == ()
    assert study.description == "PNG image 40x30, spacing unknown"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_comes_back_uint16_exactly(tmp_path, suffix: str) -> None:
    arr = np.random.default_rng(2).integers(0, 65536, (33, 17), dtype=np.uint16)
    arr[0, 0], arr[0, 1] = 0, 65535
    path = tmp_path / f"ceph16{suffix}"
    Image.fromarray(arr).save(path)
    study = open_study(path)
    assert study.pixels.dtype == np.uint16
    np.testing.assert_array_equal(study.pixels, arr)


def test_jpeg_grey_loads_as_uint8(tmp_path) -> None:
    arr = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    Image.fromarray(arr).save(tmp_path / "ceph.jpg", quality=95)
    study = open_study(tmp_path / "ceph.jpg")
    assert study.modality == "JPEG"
    assert study.pixels.dtype == np.uint8
    assert np.abs(study.pixels.astype(int) - arr).max() <= 8  # lossy, but the same picture


def test_rgb_becomes_grey_with_a_warning(tmp_path) -> None:
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    study = open_study(tmp_path / "colour.png")
    assert study.pixels.shape == (4, 5)
    assert study.pixels.dtype == np.uint8
    assert int(study.pixels[0, 0]) == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert any("grey" in w for w in study.warnings)


def test_rgba_warns_about_transparency(tmp_path) -> None:
    Image.new("RGBA", (3, 3), (10, 10, 10, 128)).save(tmp_path / "alpha.png")
    warnings = open_study(tmp_path / "alpha.png").warnings
    assert any("transparency" in w for w in warnings)


def test_spacing_only_when_given(tmp_path) -> None:
    Image.new("L", (8, 6)).save(tmp_path / "c.png")
    study = open_study(tmp_path / "c.png", spacing=(0.1, 0.12))
    assert study.spacing == (0.1, 0.12)
    assert study.description.endswith("0.1 x 0.12 mm")
    with pytest.raises(ParameterError):
        read_raster(tmp_path / "c.png", spacing=(0.0, 0.1), limits=LoadLimits())


def test_multipage_tiff_shows_the_first_page_with_a_note(tmp_path) -> None:
    pages = [Image.new("L", (4, 4), v) for v in (10, 20)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    study = open_study(tmp_path / "pages.tif")
    assert int(study.pixels[0, 0]) == 10
    assert any("several images" in w for w in study.warnings)


def test_exif_orientation_is_applied(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("L", (20, 10)).save(tmp_path / "phone.jpg", exif=exif)
    study = open_study(tmp_path / "phone.jpg")
    assert study.shape == (20, 10)
    assert any("EXIF" in w for w in study.warnings)


@pytest.mark.req("DC-3")
def test_huge_png_is_refused_before_decoding(tmp_path, measure) -> None:
    path = _tiny_huge_png(tmp_path / "bomb.png", 30000, 30000)
    assert path.stat().st_size < 1024
    before = Image.MAX_IMAGE_PIXELS
    with measure() as cost, pytest.raises(ImageTooLarge):
        open_study(path)
    assert cost.peak_bytes < FIFTY_MB
    assert before == Image.MAX_IMAGE_PIXELS  # the process-wide setting is restored


@pytest.mark.req("DC-3")
def test_raster_cap_follows_the_configured_limit(tmp_path) -> None:
    Image.new("L", (100, 100)).save(tmp_path / "small.png")
    assert open_study(tmp_path / "small.png", limits=LoadLimits(max_pixel_bytes=40_000)).shape
    with pytest.raises(ImageTooLarge):
        open_study(tmp_path / "small.png", limits=LoadLimits(max_pixel_bytes=39_999))


@pytest.mark.req("DC-3")
def test_gif_renamed_png_is_not_an_image(tmp_path) -> None:
    Image.new("P", (4, 4)).save(tmp_path / "anim.gif")
    renamed = tmp_path / "scan.png"
    renamed.write_bytes((tmp_path / "anim.gif").read_bytes())
    with pytest.raises(NotAnImage, match="scan.png"):
        open_study(renamed)


@pytest.mark.req("DC-3")
def test_fits_renamed_png_is_not_an_image(tmp_path) -> None:
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8",
             "NAXIS   =                    2", "NAXIS1  =                    4",
             "NAXIS2  =                    4", "END"]  # fmt: skip
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    path = tmp_path / "sky.png"
    path.write_bytes(header + bytes(2880))
    with pytest.raises(NotAnImage):
        open_study(path)


def test_truncated_png_is_corrupt(tmp_path) -> None:
    arr = np.random.default_rng(3).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFile):
        open_study(tmp_path / "cut.png")
