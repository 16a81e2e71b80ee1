"""Reading the pixels of one series' slices, in modality units, into one shared dtype.

Fast path: native little-endian pixels (the offset found by the header scan) are read with
`readinto` straight into the destination slice, then rescaled in place. Everything else
(compressed, big-endian, odd bit depths) goes through the single-file reader, with its guards
and typed errors. Both paths give the values of `pixels.modality_transform`. File reads release
the GIL, so a thread pool overlaps them; the kernel is asked to read ahead (`will_need`).

Memory: `read_all` allocates the volume once. When the headers allow a wider dtype than the
stored one (16-bit values plus a rescale), the stored values are read first and the values
present decide: rescaled in place when they fit the stored size (the usual case), else copied
into the wider array (then up to 3x the int16 size, only for data that does not fit int16).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from sos_core.errors import CorruptFile, ImageTooLarge
from sos_core.imaging.folder_scan import open_regular, will_need
from sos_core.imaging.limits import DEFAULT_LIMITS, LoadLimits
from sos_core.imaging.pixels import (
    ModalityTransform,
    modality_transform,
    smallest_exact_dtype,
    stored_range,
)
from sos_core.imaging.slice_header import SliceHeader

logger = logging.getLogger(__name__)

T = TypeVar("T")
_MONOCHROME = {"MONOCHROME1", "MONOCHROME2"}
_WORKERS = min(8, 2 * (os.cpu_count() or 2))


def map_threads(fn: Callable[[int], T], items: Iterable[int]) -> list[T]:
    """`fn` over `items` on a small thread pool, in batches (inline for a handful of items).

    Threads overlap the file reads (which release the GIL) on cold caches and slow disks;
    batches keep the per-task overhead small when the files are already cached.
    """
    todo = list(items)
    workers = min(_WORKERS, len(todo) // 4)
    if workers < 2:
        return [fn(i) for i in todo]
    size = -(-len(todo) // (4 * workers))
    batches = [todo[k : k + size] for k in range(0, len(todo), size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sos-slices") as pool:
        done = pool.map(lambda batch: [fn(i) for i in batch], batches)
        return [r for batch in done for r in batch]


class SliceReader:
    """Reads the slices of one series (header order) in modality units; thread-safe.

    `dtype` is the smallest dtype exact for every slice's stored-value range after its own
    Rescale Slope/Intercept (int16 for usual CT), decided before any pixel is read.
    """

    def __init__(self, headers: Sequence[SliceHeader], *, limits: LoadLimits = DEFAULT_LIMITS):
        self.headers = tuple(headers)
        self.limits = limits
        self._local = threading.local()
        first = self.headers[0]
        self.shape = (first.rows, first.columns)
        # Slices of one series nearly always share their rescale: convert each header once
        # per distinct key rather than 400 times.
        cache: dict[tuple, tuple[ModalityTransform, tuple[float, float]]] = {}
        self.transforms: list[ModalityTransform] = []
        ranges: list[tuple[float, float]] = []
        for h in self.headers:
            key = _transform_key(h)
            if key is None or key not in cache:
                ds = h.dataset
                t = modality_transform(ds)
                entry = (t, t.output_range(*stored_range(ds)))
                if key is not None:
                    cache[key] = entry
            else:
                entry = cache[key]
            self.transforms.append(entry[0])
            ranges.append(entry[1])
        self.dtype = smallest_exact_dtype(
            min(r[0] for r in ranges),
            max(r[1] for r in ranges),
            integral=all(t.integral for t in self.transforms),
            signed=any(t.signed for t in self.transforms),
        )

    def check_budget(self, n_slices: int, itemsize: int | None = None) -> None:
        """Refuse before allocating when the volume exceeds `limits.max_pixel_bytes`."""
        first = self.headers[0]
        per_voxel = max(itemsize or self.dtype.itemsize, -(-first.bits_allocated // 8))
        needed = n_slices * first.rows * first.columns * per_voxel
        if needed > self.limits.max_pixel_bytes:
            cap = self.limits.max_pixel_bytes / 1024**3
            raise ImageTooLarge(
                f"This series needs {needed / 1024**3:.1f} GiB of memory, more than the "
                f"{cap:.1f} GiB limit; it was refused before its pixels were read.",
                path=first.path,
            )

    def prefetch(self) -> None:
        """Ask the kernel to read every slice's pixel bytes ahead (cold caches, slow disks)."""
        for h in self.headers:
            if h.pixel_offset is not None:
                size = h.rows * h.columns * h.samples * h.frames * (h.bits_allocated // 8)
                will_need(h.path, h.pixel_offset, size)

    def read_all(self) -> np.ndarray:
        """All slices as one (slices, rows, cols) array, allocated once."""
        n = len(self.headers)
        self.prefetch()
        if self._data_decides_dtype():
            return self._read_raw_first(n)
        self.check_budget(n)
        out = np.empty((n, *self.shape), dtype=self.dtype)
        map_threads(lambda i: self.read_into(i, out[i]), range(n))
        return out

    def _data_decides_dtype(self) -> bool:
        """True when the headers allow a wider dtype than the stored one: the data decides."""
        first = self.headers[0]
        raw_size = first.bits_allocated // 8
        return (
            self.dtype.kind in "iu"
            and self.dtype.itemsize > raw_size
            and all(
                h.pixel_offset is not None
                and _native(h)
                and (h.bits_allocated, h.signed) == (first.bits_allocated, first.signed)
                and _simple(t)
                for h, t in zip(self.headers, self.transforms, strict=True)
            )
        )

    def _read_raw_first(self, n: int) -> np.ndarray:
        """Read stored values into a stored-size volume, then rescale in place if they fit."""
        raw_dtype = _raw_dtype(self.headers[0])
        self.check_budget(n, itemsize=raw_dtype.itemsize)
        raw = np.empty((n, *self.shape), dtype=raw_dtype)

        def read(i: int) -> tuple[float, float]:
            h = self.headers[i]
            _read_exact(h.path, h.pixel_offset or 0, raw[i])
            _fix_bits(raw[i], h)
            return self.transforms[i].output_range(float(raw[i].min()), float(raw[i].max()))

        ranges = map_threads(read, range(n))
        dtype = smallest_exact_dtype(
            min(r[0] for r in ranges),
            max(r[1] for r in ranges),
            signed=any(t.signed for t in self.transforms),
        )
        if dtype.itemsize == raw_dtype.itemsize:
            out = raw.view(dtype)  # wrap-around arithmetic below is exact: see _affine_in_place
        else:
            out = np.empty(raw.shape, dtype=dtype)  # the values need another size

            def copy(i: int) -> None:
                out[i] = raw[i]

            map_threads(copy, range(n))
            del raw
        map_threads(
            lambda i: _affine_in_place(
                out[i], self.transforms[i].slope, self.transforms[i].intercept
            ),
            range(n),
        )
        return out

    def read_into(self, i: int, dst: np.ndarray) -> None:
        """Slice `i` in modality units into `dst` (a C-contiguous (rows, cols) array)."""
        h, t = self.headers[i], self.transforms[i]
        if h.pixel_offset is None or not _native(h):
            dst[...] = self._decode(h)
            return
        raw_dtype = _raw_dtype(h)
        simple = _simple(t) and self.dtype.kind in "iu"
        if simple and self.dtype.itemsize == raw_dtype.itemsize:
            raw = dst.view(raw_dtype)  # read straight into the volume: no copy
            _read_exact(h.path, h.pixel_offset, raw)
            _fix_bits(raw, h)
            _affine_in_place(dst, t.slope, t.intercept)
            return
        raw = np.empty(self.shape, dtype=raw_dtype)
        _read_exact(h.path, h.pixel_offset, raw)
        _fix_bits(raw, h)
        if simple:
            dst[...] = raw
            _affine_in_place(dst, t.slope, t.intercept)
        else:
            t.apply(raw, dtype=self.dtype, out=dst)

    def read_slice(self, i: int) -> np.ndarray:
        """Slice `i` alone, in modality units."""
        out = np.empty(self.shape, dtype=self.dtype)
        self.read_into(i, out)
        return out

    def read_line(self, i: int, axis: int, index: int) -> np.ndarray:
        """One column (`axis` 1) or row (`axis` 0) of slice `i`, in modality units."""
        h, t = self.headers[i], self.transforms[i]
        if h.pixel_offset is None or not _native(h):
            return _line(self._decode(h), axis, index).astype(self.dtype)
        # A read of the whole slice into a per-thread buffer beats a memory map here: the
        # line touches every page anyway, and page faults cost more than the copy.
        buf = self._buffer(_raw_dtype(h))
        _read_exact(h.path, h.pixel_offset, buf)
        raw = np.array(_line(buf, axis, index))
        _fix_bits(raw, h)
        if _simple(t) and self.dtype.kind in "iu":
            out = raw.astype(self.dtype)  # wraps like the volume path; exact after the affine
            _affine_in_place(out, t.slope, t.intercept)
            return out
        return t.apply(raw, dtype=self.dtype)

    def _buffer(self, dtype: np.dtype) -> np.ndarray:
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.dtype != dtype:
            buf = self._local.buf = np.empty(self.shape, dtype=dtype)
        return buf

    def _decode(self, h: SliceHeader) -> np.ndarray:
        """One file through the single-file reader (its guards and typed errors apply)."""
        from sos_core.imaging.dicom_file import read_dicom_file

        pixels = read_dicom_file(h.path, limits=self.limits).pixels
        if pixels.shape != self.shape:
            raise CorruptFile(
                f"{h.path.name} holds an image of another size than its header states, so the "
                "series cannot be built.",
                path=h.path,
            )
        return pixels


def _transform_key(h: SliceHeader) -> tuple | None:
    """What a header's modality transform depends on; None when it must be read in full."""
    if h.has_modality_lut:
        return None
    return (h.slope, h.intercept, h.photometric, h.bits_stored, h.bits_allocated, h.signed)


def _simple(t: ModalityTransform) -> bool:
    """A whole-number rescale without lookup table or inversion: done in place."""
    return t.lut is None and t.mirror is None and t.integral


def _native(h: SliceHeader) -> bool:
    return (
        h.samples == 1
        and h.frames == 1
        and h.bits_allocated in (8, 16, 32)
        and 0 < h.bits_stored <= h.bits_allocated
        and h.photometric.strip().upper() in _MONOCHROME
        and sys.byteorder == "little"
    )


def _raw_dtype(h: SliceHeader) -> np.dtype:
    return np.dtype(f"<{'i' if h.signed else 'u'}{h.bits_allocated // 8}")


def _truncated(path: Path) -> CorruptFile:
    return CorruptFile(
        f"{path.name} is truncated: its pixel data is shorter than its header states; copy the "
        "series again from its source.",
        path=path,
    )


def _read_exact(path: Path, offset: int, buf: np.ndarray) -> None:
    """Fill `buf` with the bytes at `offset` of `path` (readinto: no intermediate copy)."""
    fd = open_regular(path)
    if fd is None:
        raise _truncated(path)
    view = memoryview(buf).cast("B")
    got = 0
    with os.fdopen(fd, "rb", buffering=0) as f:
        f.seek(offset)
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
    if got < len(view):
        raise _truncated(path)


def _line(img: np.ndarray, axis: int, index: int) -> np.ndarray:
    return img[:, index] if axis == 1 else img[index, :]


def _fix_bits(raw: np.ndarray, h: SliceHeader) -> None:
    """Mask (unsigned) or sign-extend (signed) values with fewer bits stored than allocated."""
    unused = h.bits_allocated - h.bits_stored
    if unused <= 0:
        return
    if h.signed:
        raw <<= unused
        raw >>= unused
    else:
        raw &= (1 << h.bits_stored) - 1


def _affine_in_place(dst: np.ndarray, slope: float, intercept: float) -> None:
    """dst = slope * dst + intercept for whole numbers, in dst's integer dtype.

    Wrap-around arithmetic is exact here: the dtype holds the final range, and integer
    arithmetic modulo 2**bits gives the right result whenever the result fits.
    """
    if slope != 1:
        dst *= np.asarray(int(slope)).astype(dst.dtype)
    if intercept != 0:
        dst += np.asarray(int(intercept)).astype(dst.dtype)
