"""Checks that run before pydicom reads values or decodes pixels (DC-2).

Two gates protect the loaders from files that lie about their size:

* `prescan_element_lengths` walks the element headers of a file (tag, VR, length) without
  reading values, and refuses any element whose declared length runs past the end of the file.
  CPython's ``file.read(n)`` allocates ``n`` bytes up front, so without this a 300-byte file
  claiming a 2 GiB value would make pydicom allocate 2 GiB before noticing the truncation.
* `check_pixel_budget` multiplies Rows x Columns x Frames x SamplesPerPixel x bytes per sample
  from a header-only dataset and refuses images above `LoadLimits.max_pixel_bytes`, so a
  decompression bomb is refused before a decoder allocates its output.

Both are plain functions, safe to call from any thread. `open_bounded` is the third line of
defence: a file object for pydicom whose ``read(n)`` never asks for more than the bytes left, so
even where pydicom's recovery from damaged structure reads a bogus length, it allocates at most
the file's size.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from sos_core.errors import CorruptFile, ImageTooLarge, NotAnImage
from sos_core.imaging.limits import LoadLimits

logger = logging.getLogger(__name__)

MAX_SEQUENCE_DEPTH = 64
"""Deeper sequence nesting is refused: real objects nest a handful of levels (pydicom #2330)."""

_MAX_ELEMENTS = 5_000_000
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xE000, 0xE00D, 0xE0DD
# Explicit-VR VRs pydicom knows, and those whose length field is 4 bytes after 2 reserved
# bytes (PS3.5 Table 7.1-1); taken from pydicom so that both read headers alike.
_KNOWN_VRS = frozenset(str(vr).encode("ascii") for vr in VR)
_LONG_VRS = frozenset(str(vr).encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
_FIRST_GROUPS = (0x0002, 0x0008)


def _corrupt(path: Path) -> CorruptFile:
    return CorruptFile(
        f"{path.name} is truncated or damaged: part of its content is missing, so it cannot be "
        "opened; copy the file again from its source.",
        path=path,
    )


_PIXEL_TAGS = frozenset({(0x7FE0, 0x0008), (0x7FE0, 0x0009), (0x7FE0, 0x0010)})


def prescan_element_lengths(path: Path, limits: LoadLimits) -> bool | None:
    """Refuse a DICOM file whose element headers promise more bytes than the file holds.

    Walks every element header (nested sequences and encapsulated fragments included) using
    memory-mapped reads, never reading a value. It only raises on evidence of damage; where the
    structure is merely unusual it stops and leaves the judgement to pydicom.

    Parameters
    ----------
    path
        The file to check.
    limits
        Caps; a deflated dataset may inflate to at most
        ``max_pixel_bytes + max_header_bytes``.

    Returns
    -------
    bool or None
        Whether the top-level dataset holds a pixel data element (Pixel Data, Float or Double
        Float Pixel Data); None when the walk stopped early on an unusual structure.

    Raises
    ------
    NotAnImage
        The file does not start like a DICOM file (no "DICM" preamble, and its first bytes are
        not a DICOM element).
    CorruptFile
        An element's declared length exceeds the bytes left in the file, or sequences nest more
        than `MAX_SEQUENCE_DEPTH` deep.
    ImageTooLarge
        A deflated dataset inflates beyond the cap.
    """
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        if size < 8:
            raise _not_dicom(path)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            start, little, implicit, deflated = _sniff(buf, size, path)
            if deflated:
                body = _inflate(buf[start:], path, limits)
                return _walk(body, 0, len(body), little=True, implicit=False, path=path)
            return _walk(buf, start, size, little=little, implicit=implicit, path=path)


def _not_dicom(path: Path) -> NotAnImage:
    return NotAnImage(
        f"{path.name} is not a DICOM file or a PNG, JPEG or TIFF image, so it cannot be opened.",
        path=path,
    )


def _sniff(buf: Any, size: int, path: Path) -> tuple[int, bool, bool, bool]:
    """Return (dataset offset, little endian, implicit VR, deflated) for the file in `buf`."""
    if size >= 132 and buf[128:132] == b"DICM":
        return _read_meta(buf, 132, size, path)
    # No preamble: accept only a first element in group 0002 or 0008, as pydicom's force mode
    # would otherwise "parse" any text or image file into one bogus element.
    group_le, group_be = struct.unpack_from("<H", buf, 0)[0], struct.unpack_from(">H", buf, 0)[0]
    if group_le == 0x0002:
        return _read_meta(buf, 0, size, path)
    if group_le in _FIRST_GROUPS or group_be in _FIRST_GROUPS:
        little = group_le in _FIRST_GROUPS
        return 0, little, not _is_vr(buf[4:6]), False
    raise _not_dicom(path)


def _is_vr(raw: bytes) -> bool:
    return len(raw) == 2 and all(0x41 <= c <= 0x5A for c in raw)


def _read_meta(buf: Any, pos: int, size: int, path: Path) -> tuple[int, bool, bool, bool]:
    """Walk the group-0002 File Meta elements (always explicit VR little endian)."""
    tsuid = ""
    while pos + 8 <= size:
        group, elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = bytes(buf[pos + 4 : pos + 6])
        if not _is_vr(vr):
            break
        if vr in _LONG_VRS:
            if pos + 12 > size:
                raise _corrupt(path)
            length, header = struct.unpack_from("<L", buf, pos + 8)[0], 12
        else:
            length, header = struct.unpack_from("<H", buf, pos + 6)[0], 8
        if length == _UNDEFINED or length > size - pos - header:
            raise _corrupt(path)
        if elem == 0x0010 and length <= 64:
            tsuid = (
                bytes(buf[pos + header : pos + header + length])
                .rstrip(b"\x00 ")
                .decode("ascii", "replace")
            )
        pos += header + length
    if not tsuid and pos + 6 <= size:
        # Transfer syntax missing from the meta: guess as pydicom does, from the first element.
        return pos, True, not _is_vr(bytes(buf[pos + 4 : pos + 6])), False
    return pos, tsuid != _EXPLICIT_BE, tsuid == _IMPLICIT_LE, tsuid in _DEFLATED


def _inflate(raw: bytes, path: Path, limits: LoadLimits) -> bytes:
    """Inflate a deflated dataset with an output cap, so a deflate bomb is refused early."""
    cap = limits.max_pixel_bytes + limits.max_header_bytes
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out, total, chunk = [], 0, 1 << 20
    try:
        data = inflater.decompress(raw, chunk)
        while data:
            total += len(data)
            if total > cap:
                raise ImageTooLarge(
                    f"{path.name} expands to more data than the configured limit allows; it was "
                    "refused before decoding.",
                    path=path,
                )
            out.append(data)
            data = inflater.decompress(inflater.unconsumed_tail, chunk)
    except zlib.error as exc:
        raise _corrupt(path) from exc
    return b"".join(out)


def _walk(buf: Any, pos: int, end: int, *, little: bool, implicit: bool, path: Path) -> bool | None:
    """Iteratively walk element headers from `pos`; see `prescan_element_lengths`.

    Mirrors how pydicom's `data_element_generator` reads headers (including its switch to
    implicit VR for an element whose VR bytes are not letters), so that every length pydicom
    would act on is checked here first.
    """
    order = "<" if little else ">"
    # Each frame: (container end, or None for undefined length; holds pixel fragments).
    stack: list[tuple[int | None, bool]] = [(end, False)]
    resume: list[int | None] = [None]  # where pydicom goes on after each frame
    count, found = 0, False
    while stack:
        limit, fragments = stack[-1]
        if limit is not None and pos >= limit:
            stack.pop()
            after = resume.pop()
            pos = pos if after is None else after
            continue
        if pos + 8 > end:
            # A few trailing bytes, or a sequence left open at the end: pydicom decides.
            return found if len(stack) == 1 else None
        count += 1
        if count > _MAX_ELEMENTS:
            raise _corrupt(path)
        group, elem = struct.unpack_from(order + "HH", buf, pos)
        if group == 0xFFFE:
            length = struct.unpack_from(order + "L", buf, pos + 4)[0]
            pos += 8
            if elem in (_ITEM_END, _SEQ_END):
                if len(stack) > 1 and (elem == _SEQ_END or stack[-1][0] is None):
                    stack.pop()
                    resume.pop()
                continue
            if elem != _ITEM or (fragments and length == _UNDEFINED):
                return None  # not a structure pydicom would read further either
            if fragments:
                # pydicom reads a fragment's bytes at once: its length must fit in the file.
                if length > end - pos:
                    raise _corrupt(path)
                pos += length
                continue
            # pydicom parses a sequence item element by element, so an item that overruns
            # the file by a little is tolerated (DICOMDIR-nooffset does); clamp it.
            stack.append((None if length == _UNDEFINED else min(pos + length, end), False))
            resume.append(None)  # after an item pydicom goes on from where its parse ended
            _check_depth(stack, path)
            continue
        vr, header, length = _element_header(buf, pos, end, order, implicit)
        if header == 0:
            return None
        if len(stack) == 1 and (group, elem) in _PIXEL_TAGS:
            found = True
        pos += header
        if length == _UNDEFINED:
            is_pixels = (group, elem) == (0x7FE0, 0x0010)
            items_follow = pos + 4 <= end and struct.unpack_from(order + "HH", buf, pos) == (
                0xFFFE,
                _ITEM,
            )
            if vr in (b"SQ", b"UN") or (vr is None and items_follow and not is_pixels):
                stack.append((None, False))
            elif is_pixels or vr in (b"OB", b"OW"):
                stack.append((None, True))
            else:
                return None  # pydicom scans such a value for its delimiter: bounded by the file
            resume.append(None)
            _check_depth(stack, path)
        elif length > end - pos:
            raise _corrupt(path)
        elif vr == b"SQ" and length:
            # pydicom reads a defined-length sequence as one value and goes on right after
            # it, whatever its items claim; the items are parsed later from those bytes.
            stack.append((pos + length, False))
            resume.append(pos + length)
            _check_depth(stack, path)
        else:
            pos += length
    return found


def _element_header(
    buf: Any, pos: int, end: int, order: str, implicit: bool
) -> tuple[bytes | None, int, int]:
    """Return (VR, None when read as implicit; header size, 0 when unreadable; length)."""
    if implicit:
        return None, 8, struct.unpack_from(order + "L", buf, pos + 4)[0]
    vr = bytes(buf[pos + 4 : pos + 6])
    if vr in _KNOWN_VRS:
        if vr not in _LONG_VRS:
            return vr, 8, struct.unpack_from(order + "H", buf, pos + 6)[0]
        if pos + 12 > end:
            return vr, 0, 0
        return vr, 12, struct.unpack_from(order + "L", buf, pos + 8)[0]
    if not (b"AA" <= vr <= b"ZZ"):
        # pydicom assumes a switch to implicit VR for this element (assume_implicit_vr_switch).
        return None, 8, struct.unpack_from(order + "L", buf, pos + 4)[0]
    return vr, 8, struct.unpack_from(order + "H", buf, pos + 6)[0]


def _check_depth(stack: list[tuple[int | None, bool]], path: Path) -> None:
    # Two stack frames per nesting level (the sequence and its item).
    if len(stack) > 2 * MAX_SEQUENCE_DEPTH:
        raise CorruptFile(
            f"{path.name} is damaged: its structure nests far deeper than any real image file, "
            "so it cannot be opened.",
            path=path,
        )


def check_pixel_budget(header: Any, path: Path, limits: LoadLimits) -> int:
    """Refuse an image whose decoded pixels would exceed ``limits.max_pixel_bytes``.

    Parameters
    ----------
    header
        A pydicom ``Dataset`` (a header-only one read with ``stop_before_pixels=True`` is
        enough) or a mapping with the keys Rows, Columns, NumberOfFrames, SamplesPerPixel and
        BitsAllocated.
    path
        The file the header came from (only its base name reaches the message).
    limits
        Holds the cap.

    Returns
    -------
    int
        Rows x Columns x Frames x SamplesPerPixel x ceil(BitsAllocated / 8), in bytes.

    Raises
    ------
    ImageTooLarge
        The product exceeds the cap.
    CorruptFile
        A size attribute is missing, not a number, or not positive.
    """
    try:
        rows = _positive(header, "Rows", None)
        cols = _positive(header, "Columns", None)
        frames = _positive(header, "NumberOfFrames", 1)
        samples = _positive(header, "SamplesPerPixel", 1)
        bits = _positive(header, "BitsAllocated", None)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise CorruptFile(
            f"{path.name} is damaged: its image size attributes are missing or invalid, so it "
            "cannot be opened.",
            path=path,
        ) from exc
    needed = rows * cols * frames * samples * -(-bits // 8)
    if needed > limits.max_pixel_bytes:
        raise ImageTooLarge(
            f"{path.name} declares an image of {needed / 1024**3:.1f} GiB, more than the "
            f"{limits.max_pixel_bytes / 1024**3:.1f} GiB limit; it was refused before decoding.",
            path=path,
        )
    return needed


def _positive(header: Any, keyword: str, default: int | None) -> int:
    """One size attribute as a positive int; `default` when absent (None: required)."""
    # Both pydicom's Dataset and a plain Mapping answer .get(keyword).
    value = header.get(keyword) if hasattr(header, "get") else getattr(header, keyword, None)
    if value is None or value == "":
        if default is None:
            raise KeyError(keyword)
        return default
    number = int(value)
    if number <= 0:
        raise ValueError(keyword)
    return number


class BoundedReader(io.BufferedReader):
    """A buffered binary file whose ``read(n)`` is clamped to the bytes left in the file.

    CPython's ``BufferedReader.read(n)`` allocates ``n`` bytes before reading, so a damaged
    length field read by pydicom's error recovery could otherwise cost gigabytes.
    """

    def __init__(self, raw: io.RawIOBase, size: int) -> None:
        super().__init__(raw)  # type: ignore[arg-type]
        self._size = size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 0:
            size = min(size, max(0, self._size - self.tell()))
        return super().read(size)


def open_bounded(path: Path) -> BoundedReader:
    """Open `path` for pydicom (``dcmread(open_bounded(path), ...)``); close it after use."""
    raw = io.FileIO(path, "r")
    try:
        size = os.fstat(raw.fileno()).st_size
    except OSError:
        raw.close()
        raise
    return BoundedReader(raw, size)
