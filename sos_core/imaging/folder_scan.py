"""Header-only folder scan (DC-6): which DICOM image series a folder holds, without pixel data.

Every file gets a byte and a time budget; non-regular files (FIFO, device, socket) are skipped
after a `stat` without being opened; directory symlink loops are followed once; junk is skipped.
Headers are parsed by pydicom with `stop_before_pixels=True` and `specific_tags` from the first
few kilobytes of the file; the file offset of uncompressed pixel bytes is kept so that the
series loader can read them without a second parse. No path is ever derived from a DICOM value.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sos_core.imaging.limits import DEFAULT_LIMITS, LoadLimits
from sos_core.imaging.slice_header import (
    NeedMoreBytes,
    SliceHeader,
    looks_like_dicom,
    parse_header,
)
from sos_core.imaging.study import SeriesInfo

logger = logging.getLogger(__name__)

_FIRST_CHUNK = 8192  # a CT header is ~1-3 KB; vendors with big private blocks grow the chunk
_MAX_DEPTH = 32
_AHEAD = 64  # files whose first chunk the kernel is asked to read ahead of the parser


class _OverBudget(Exception):
    """A file's header did not fit its byte or time budget."""


@dataclass(frozen=True, slots=True)
class FolderScan:
    """Image headers found, with reviewer-facing notes about what was skipped."""

    headers: tuple[SliceHeader, ...]
    warnings: tuple[str, ...]
    n_files: int


def series_key(uid: str) -> str:
    """Opaque, stable handle of a series: a short hash, never the UID itself (DI-2).

    The same digest as the single-file reader's `SeriesInfo.key`, so a key is the same
    whichever way the series was opened.
    """
    return hashlib.sha256(uid.encode()).hexdigest()[:16] if uid else "single-file"


def scan_folder(path: Path, *, limits: LoadLimits = DEFAULT_LIMITS) -> list[SeriesInfo]:
    """List the image series in a folder (recursively) from file headers only.

    Parameters
    ----------
    path
        Folder to scan; sub-folders are included and directory symlinks followed once.
    limits
        Byte and time budget per header and the maximum number of files.

    Returns
    -------
    One `SeriesInfo` per image series, ordered by series number then key.
    """
    return series_infos(scan_headers(Path(path), limits=limits).headers)


def scan_headers(root: Path, *, limits: LoadLimits = DEFAULT_LIMITS) -> FolderScan:
    """Scan every file under `root` and return the headers of image files."""
    return scan_paths(iter_files(root, limits=limits), limits=limits)


def scan_paths(paths: Iterable[Path], *, limits: LoadLimits = DEFAULT_LIMITS) -> FolderScan:
    """Read the header of each path (skipping non-regular files and junk).

    The kernel is asked to read the first chunk of the next files ahead (`will_need`), so a
    cold cache or a slow disk serves several requests at once while this thread parses.
    """
    todo = list(itertools.islice(paths, limits.max_files + 1))
    stopped = len(todo) > limits.max_files
    todo = todo[: limits.max_files]
    headers: list[SliceHeader] = []
    over_budget = 0
    for path in todo[:_AHEAD]:
        will_need(path, 0, _FIRST_CHUNK)
    for i, path in enumerate(todo):
        if i + _AHEAD < len(todo):
            will_need(todo[i + _AHEAD], 0, _FIRST_CHUNK)
        try:
            header = read_header(path, limits=limits)
        except _OverBudget:
            over_budget += 1
            continue
        except OSError:
            logger.debug("could not read %s", path.name, exc_info=True)
            continue
        if header is not None:
            headers.append(header)
    notes: list[str] = []
    if over_budget:
        notes.append(
            f"{over_budget} files were skipped because their headers were too large or too slow "
            "to read; they may belong to the study."
        )
    if stopped:
        notes.append(
            f"The scan stopped after {limits.max_files} files; choose a smaller folder if "
            "images are missing."
        )
    logger.debug("scanned %d files, %d image headers", len(todo), len(headers))
    return FolderScan(tuple(headers), tuple(notes), len(todo))


def will_need(path: Path, offset: int, length: int) -> None:
    """Ask the kernel to start reading a byte range now (asynchronously); a no-op where
    `posix_fadvise` does not exist or the file cannot be opened."""
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = open_regular(path)
        if fd is not None:
            try:
                os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
    except OSError:
        return


def iter_files(root: Path, *, limits: LoadLimits = DEFAULT_LIMITS) -> Iterator[Path]:
    """Regular files under `root`, depth-first in name order; each directory is visited once."""
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue  # a symlink loop or a second link to a folder already scanned
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            logger.debug("cannot list a sub-folder", exc_info=True)
            continue
        subfolders: list[tuple[Path, int]] = []
        for entry in entries:
            try:
                mode = entry.stat().st_mode  # follows symlinks; never opens the file
            except OSError:
                continue  # dangling symlink, permission
            if stat.S_ISDIR(mode):
                if depth < _MAX_DEPTH:
                    subfolders.append((Path(entry.path), depth + 1))
            elif stat.S_ISREG(mode):
                yield Path(entry.path)
        stack.extend(reversed(subfolders))


def read_header(path: Path, *, limits: LoadLimits = DEFAULT_LIMITS) -> SliceHeader | None:
    """Parse one file's header within its budget; None for non-DICOM or non-image files.

    Raises `_OverBudget` when the header does not fit the byte or time budget and `OSError`
    when the file cannot be read.
    """
    deadline = time.monotonic() + limits.max_header_seconds
    fd = open_regular(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        chunk = f.read(min(size, _FIRST_CHUNK))
        if not looks_like_dicom(chunk):
            return None
        while True:
            try:
                return parse_header(path, chunk, complete=len(chunk) >= size)
            except NeedMoreBytes:
                pass
            if len(chunk) >= limits.max_header_bytes or time.monotonic() > deadline:
                raise _OverBudget
            chunk += f.read(min(size, limits.max_header_bytes, 4 * len(chunk)) - len(chunk))


def open_regular(path: Path) -> int | None:
    """Open a regular file for reading without ever blocking on a FIFO; None if not regular."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        return None
    # O_NONBLOCK: if the path became a FIFO after the stat, open() must not wait for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def group_series(headers: Iterable[SliceHeader]) -> dict[str, list[SliceHeader]]:
    """Headers grouped by series key, in scan order."""
    groups: dict[str, list[SliceHeader]] = {}
    keys: dict[str, str] = {}
    for h in headers:
        key = keys.get(h.series_uid) or keys.setdefault(h.series_uid, series_key(h.series_uid))
        groups.setdefault(key, []).append(h)
    return groups


def series_infos(headers: Iterable[SliceHeader]) -> list[SeriesInfo]:
    """One de-identified `SeriesInfo` per series (no free-text header value is shown)."""
    infos: list[tuple[int, SeriesInfo]] = []
    for key, group in group_series(headers).items():
        first = group[0]
        number = first.series_number
        frames = sum(h.frames for h in group)
        what = "images" if frames > 1 else "image"
        label = f"Series {number}: " if number is not None else ""
        description = f"{label}{first.modality}, {frames} {what} of {first.rows}x{first.columns}"
        info = SeriesInfo(key, first.modality, description, len(group), first.rows, first.columns)
        infos.append((number if number is not None else 1 << 30, info))
    return [info for _, info in sorted(infos, key=lambda t: (t[0], t[1].key))]
