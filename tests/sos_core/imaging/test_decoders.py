"""DC-4: compressed files match their uncompressed twins; a missing decoder is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGExtended12Bit,
    JPEGLSLossless,
    RLELossless,
)

from sos_core.errors import UnsupportedEncoding
from sos_core.imaging import open_study

# (compressed or differently encoded file, its uncompressed twin), all shipped by pydicom.
TWINS = [
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("MR_small_bigendian.dcm", "MR_small.dcm"),
    ("MR_small_expb.dcm", "MR_small.dcm"),
    ("MR_small_implicit.dcm", "MR_small.dcm"),
    ("MR_small_padded.dcm", "MR_small.dcm"),
    ("rtdose_rle.dcm", "rtdose.dcm"),
    ("rtdose_expb.dcm", "rtdose.dcm"),
    ("rtdose_rle_1frame.dcm", "rtdose_1frame.dcm"),
    ("liver_expb_1frame.dcm", "liver_1frame.dcm"),
    ("SC_rgb_small_odd_big_endian.dcm", "SC_rgb_small_odd.dcm"),
    ("image_dfl.dcm", None),  # deflated: compared with pydicom's own decode below
]


@pytest.mark.req("DC-4")
@pytest.mark.filterwarnings("ignore:The pixel data is:UserWarning")  # MR_small_padded's padding
@pytest.mark.parametrize(("encoded", "plain"), TWINS)
def test_encoded_file_matches_its_uncompressed_twin(encoded: str, plain: str | None) -> None:
    study = open_study(get_testdata_file(encoded))
    if plain is None:
        reference = pydicom.dcmread(get_testdata_file(encoded)).pixel_array
        np.testing.assert_array_equal(study.pixels, reference)
        return
    twin = open_study(get_testdata_file(plain))
    assert study.pixels.dtype == twin.pixels.dtype
    np.testing.assert_array_equal(study.pixels, twin.pixels)
    assert study.kind == twin.kind
    assert study.spacing == twin.spacing


@pytest.fixture
def without_decoders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every plugin of the compressed syntaxes through pydicom's decoder API."""
    for uid in (JPEGLSLossless, JPEG2000Lossless, RLELossless, JPEGExtended12Bit):
        decoder = get_decoder(uid)
        # A private copy that monkeypatch restores, so removal cannot leak into other tests.
        monkeypatch.setattr(decoder, "_available", dict(decoder._available))
        for label in list(decoder.available_plugins):
            decoder.remove_plugin(label)
        assert not decoder.is_available


@pytest.mark.req("DC-4")
@pytest.mark.parametrize(
    ("name", "uid", "package"),
    [
        ("MR_small_jpeg_ls_lossless.dcm", JPEGLSLossless, "pylibjpeg-libjpeg"),
        ("MR_small_jp2klossless.dcm", JPEG2000Lossless, "pylibjpeg-openjpeg"),
        ("MR_small_RLE.dcm", RLELossless, "pylibjpeg-rle"),
        ("JPGExtended.dcm", JPEGExtended12Bit, "pylibjpeg-libjpeg"),
    ],
)
@pytest.mark.usefixtures("without_decoders")
def test_missing_decoder_names_syntax_and_package(name: str, uid: str, package: str) -> None:
    path = Path(get_testdata_file(name))
    with pytest.raises(UnsupportedEncoding) as info:
        open_study(path)
    err = info.value
    assert err.transfer_syntax_uid == uid
    assert err.transfer_syntax_name == pydicom.uid.UID(uid).name
    assert package in err.plugin_hint.split()
    assert f"pip install {err.plugin_hint}" in str(err)
    assert str(path.parent) not in str(err)


@pytest.mark.req("DC-4")
def test_decoders_are_back_after_the_fixture() -> None:
    # Guards the fixture above: removal must not leak into the rest of the suite.
    assert get_decoder(JPEGLSLossless).is_available
    assert open_study(get_testdata_file("MR_small_jpeg_ls_lossless.dcm")).pixels.size


@pytest.mark.req("DC-4")
def test_syntax_without_any_decoder_is_unsupported(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: pydicom has no decoder
    path = tmp_path / "video.dcm"
    ds.save_as(path)
    with pytest.raises(UnsupportedEncoding) as info:
        open_study(path)
    assert info.value.transfer_syntax_uid == "1.2.840.10008.1.2.4.100"
    assert info.value.plugin_hint == ""
