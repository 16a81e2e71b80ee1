"""One DICOM file's header, parsed from its first bytes up to (not into) the pixel data.

pydicom parses the data set (its `data_element_generator` with a stop-before-pixels condition
and `specific_tags`, what `dcmread(stop_before_pixels=True, specific_tags=...)` runs); the small
File Meta group is walked here because pydicom's own meta reader costs twice the rest of the
header. The few numbers a series needs are converted from the raw element bytes, falling back to
pydicom's converters for anything unusual; a `Dataset` is only built when asked for.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.charset import default_encoding
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator

logger = logging.getLogger(__name__)

_KEYWORDS = [
    *("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "Modality"),
    *("SeriesNumber", "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient"),
    *("PixelSpacing", "SliceThickness", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel"),
    *("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"),
    *("PhotometricInterpretation", "RescaleSlope", "RescaleIntercept", "RescaleType"),
    *("ModalityLUTSequence", "WindowCenter", "WindowWidth", "VOILUTFunction"),
]
_TAGS: dict[str, int] = {k: int(t) for k in _KEYWORDS if (t := tag_for_keyword(k)) is not None}
HEADER_TAGS = list(_TAGS.values())

_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", ""}
_IMPLICIT_LE, _EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
_DEFLATED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT", b"SV"}
_LONG_VRS |= {b"UV"}
# A header we cannot parse is skipped whatever pydicom raises on it: junk is expected.
PARSE_ERRORS = (
    InvalidDicomError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    RecursionError,
    struct.error,
)


class NeedMoreBytes(Exception):
    """The chunk ends before the pixel data element: read more of the file."""


@dataclass(frozen=True, slots=True)
class SliceHeader:
    """What the scan learnt about one image file; geometry in mm, LPS patient coordinates.

    `sop_uid` stays in memory (duplicate detection) and is never shown; `elements` holds only
    the header tags in `HEADER_TAGS`, unconverted.
    """

    path: Path
    series_uid: str
    sop_uid: str
    modality: str
    series_number: int | None
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    slope: float
    intercept: float
    has_modality_lut: bool
    orientation: tuple[float, ...] | None
    position: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None
    instance_number: int | None
    pixel_offset: int | None  # byte offset of native little-endian pixels; None: decode
    elements: Mapping[int, Any] = field(compare=False, repr=False)  # raw header elements
    encoding: tuple[bool, bool] = (False, True)  # (implicit VR, little endian)

    @property
    def dataset(self) -> Dataset:
        """A fresh pydicom Dataset of the header tags (for the shared pixel helpers)."""
        ds = Dataset(dict(self.elements))
        ds.set_original_encoding(*self.encoding, default_encoding)
        return ds


def looks_like_dicom(chunk: bytes) -> bool:
    """True for a DICM preamble, or a first element in group 0002 / 0008 (no preamble)."""
    if len(chunk) >= 132 and chunk[128:132] == b"DICM":
        return True
    return len(chunk) >= 8 and chunk[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08")


def parse_header(path: Path, chunk: bytes, *, complete: bool) -> SliceHeader | None:
    """Parse the header in `chunk` (the first bytes of `path`).

    Returns None for a file that is not a DICOM image; raises `NeedMoreBytes` when `chunk`
    ends before the pixel data and is not the `complete` file.
    """
    # No warnings.catch_warnings() here: it is not thread-safe (scans run in worker threads),
    # and pydicom's warnings about odd files are attributed to pydicom, not to us.
    try:
        parsed = _parse(chunk, complete=complete)
    except (NeedMoreBytes, *PARSE_ERRORS):
        if not complete:
            raise NeedMoreBytes from None
        logger.debug("skipping a file that cannot be parsed: %s", path.name)
        return None
    if parsed is None:
        return None
    elements, encoding, pos, syntax = parsed
    return _header(path, elements, encoding, chunk, pos, syntax)


_Parsed = tuple[dict[int, Any], tuple[bool, bool], int | None, str]


def _parse(chunk: bytes, *, complete: bool) -> _Parsed | None:
    start, syntax = _meta(chunk)
    if syntax in _DEFLATED:
        if not complete:
            raise NeedMoreBytes
        ds = dcmread(DicomBytesIO(chunk), force=True, stop_before_pixels=True)
        elements = {int(e.tag): e for e in ds.elements()}
        return elements, ds.original_encoding, None, syntax  # type: ignore[return-value]
    bio = DicomBytesIO(chunk)
    bio.seek(start)
    implicit = syntax == _IMPLICIT_LE or (not syntax and not _is_vr(chunk[start + 4 : start + 6]))
    little = syntax != _EXPLICIT_BE
    generator = data_element_generator(
        bio, implicit, little, stop_when=_at_pixels, specific_tags=HEADER_TAGS
    )
    elements = {int(e.tag): e for e in generator}
    pos = bio.tell()
    tag = (
        struct.unpack_from("<HH" if little else ">HH", chunk, pos) if pos + 4 <= len(chunk) else ()
    )
    if len(tag) == 2 and (tag[0] << 16 | tag[1]) in _PIXEL_TAGS:
        if pos + 12 > len(chunk) and not complete:
            raise NeedMoreBytes
        return elements, (implicit, little), pos, syntax
    if not complete:
        raise NeedMoreBytes
    return None  # no pixel data: a report, structure set, DICOMDIR, ...


def _at_pixels(tag: int, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_TAGS


def _is_vr(raw: bytes) -> bool:
    return len(raw) == 2 and all(0x41 <= c <= 0x5A for c in raw)


def _meta(chunk: bytes) -> tuple[int, str]:
    """(offset of the data set, transfer syntax UID or "") after the File Meta group."""
    pos = 132 if chunk[128:132] == b"DICM" else 0
    syntax = ""
    while pos + 8 <= len(chunk):
        group, elem = struct.unpack_from("<HH", chunk, pos)
        if group != 0x0002:
            return pos, syntax
        vr = chunk[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(chunk):
                break
            length, head = struct.unpack_from("<L", chunk, pos + 8)[0], 12
        else:
            length, head = struct.unpack_from("<H", chunk, pos + 6)[0], 8
        if elem == 0x0010:
            raw = chunk[pos + head : pos + head + length]
            syntax = raw.rstrip(b"\x00 ").decode("ascii", "replace")
        pos += head + length
    raise NeedMoreBytes


def _header(
    path: Path,
    elements: dict[int, Any],
    encoding: tuple[bool, bool],
    chunk: bytes,
    pos: int | None,
    syntax: str,
) -> SliceHeader | None:
    v = _Values(elements, encoding)
    rows, cols = v.int("Rows"), v.int("Columns")
    if not rows or not cols:
        return None
    bits = v.int("BitsAllocated") or 16
    frames = max(v.int("NumberOfFrames") or 1, 1)
    samples = v.int("SamplesPerPixel") or 1
    n_bytes = rows * cols * frames * samples * bits // 8
    return SliceHeader(
        path=path,
        series_uid=v.str("SeriesInstanceUID"),
        sop_uid=v.str("SOPInstanceUID"),
        modality=_modality(v.str("Modality")),
        series_number=v.int("SeriesNumber"),
        rows=rows,
        columns=cols,
        frames=frames,
        samples=samples,
        bits_allocated=bits,
        bits_stored=v.int("BitsStored") or bits,
        signed=v.int("PixelRepresentation") == 1,
        photometric=v.str("PhotometricInterpretation"),
        slope=(v.floats("RescaleSlope", 1) or (1.0,))[0] or 1.0,
        intercept=(v.floats("RescaleIntercept", 1) or (0.0,))[0],
        has_modality_lut=_TAGS["ModalityLUTSequence"] in elements,
        orientation=v.floats("ImageOrientationPatient", 6),
        position=v.floats("ImagePositionPatient", 3),
        pixel_spacing=v.floats("PixelSpacing", 2),
        instance_number=v.int("InstanceNumber"),
        pixel_offset=_native_offset(encoding, chunk, pos, syntax, n_bytes)
        if bits % 8 == 0
        else None,
        elements=elements,
        encoding=encoding,
    )


def _modality(value: str) -> str:
    """The Modality code, or "OT" for anything that is not one (it reaches descriptions)."""
    value = value.upper()
    return value if value.isalnum() and len(value) <= 16 else "OT"


def _native_offset(
    encoding: tuple[bool, bool], chunk: bytes, pos: int | None, syntax: str, n: int
) -> int | None:
    """File offset of the pixel value when it can be read raw (native little-endian)."""
    implicit, little = encoding
    if pos is None or syntax not in _NATIVE_SYNTAXES or not little:
        return None
    if chunk[pos : pos + 4] != b"\xe0\x7f\x10\x00" or pos + 12 > len(chunk):
        return None
    if not implicit and chunk[pos + 4 : pos + 6] in _LONG_VRS:
        length, start = struct.unpack_from("<L", chunk, pos + 8)[0], pos + 12
    else:
        length, start = struct.unpack_from("<L", chunk, pos + 4)[0], pos + 8
    if length == 0xFFFFFFFF or length < n:
        return None  # encapsulated or short: the decoder path reports it
    return start


class _Values:
    """Header numbers from raw element bytes (fast), else from pydicom's converters."""

    def __init__(self, elements: dict[int, Any], encoding: tuple[bool, bool]) -> None:
        self.elements = elements
        self.encoding = encoding
        self.little = encoding[1] is not False
        self._ds: Dataset | None = None

    def _raw(self, keyword: str) -> RawDataElement | None:
        elem = self.elements.get(_TAGS[keyword])
        return elem if isinstance(elem, RawDataElement) and elem.value is not None else None

    def _converted(self, keyword: str) -> Any:
        """pydicom's conversion, for an element present in an unexpected form."""
        if _TAGS[keyword] not in self.elements:
            return None
        if self._ds is None:
            self._ds = Dataset(dict(self.elements))
            self._ds.set_original_encoding(*self.encoding, default_encoding)
        try:
            return self._ds.get(keyword)
        except PARSE_ERRORS:
            return None

    def int(self, keyword: str) -> int | None:
        raw = self._raw(keyword)
        try:
            if raw is not None and keyword in _STRING_INTS and raw.VR in (None, "IS"):
                text = raw.value.split(b"\\")[0].strip()
                return int(float(text)) if text else None
            if raw is not None and keyword not in _STRING_INTS and raw.VR in (None, "US"):
                return struct.unpack_from("<H" if self.little else ">H", raw.value)[0]
            value = self._converted(keyword)
            return int(value) if value not in (None, "") else None
        except (*PARSE_ERRORS, TypeError):
            return None

    def floats(self, keyword: str, n: int) -> tuple[float, ...] | None:
        raw = self._raw(keyword)
        try:
            if raw is not None and raw.VR in (None, "DS"):
                values = tuple(float(p) for p in raw.value.split(b"\\") if p.strip())
            else:
                value = self._converted(keyword)
                if value is None or value == "":
                    return None
                values = tuple(float(p) for p in (value if _is_multi(value) else [value]))
        except PARSE_ERRORS:
            return None
        return values if len(values) == n else None

    def str(self, keyword: str) -> str:
        raw = self._raw(keyword)
        if raw is not None and raw.VR in (None, "UI", "CS"):
            return raw.value.rstrip(b"\x00 ").decode("ascii", "replace").strip()
        value = self._converted(keyword)
        return str(value).strip() if value is not None else ""


_STRING_INTS = {"SeriesNumber", "InstanceNumber", "NumberOfFrames"}


def _is_multi(value: Any) -> bool:
    return not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__len__")
