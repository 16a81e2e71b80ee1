"""DICOMDIR: the index file of a DICOM CD/DVD/USB export (DC-5).

The only place where a file path comes from a DICOM value: a directory record's
ReferencedFileID. Each one must be plain path components (no "..", no separators, no drive)
that resolve, symlinks followed, inside the DICOMDIR's own folder; any other entry is skipped
with a warning and never opened. The referenced files then go through the same header-only scan
and series assembly as a folder.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from pydicom import dcmread

from sos_core.errors import CorruptFile, NotAnImage
from sos_core.imaging import guards
from sos_core.imaging.folder_scan import FolderScan, scan_paths
from sos_core.imaging.limits import DEFAULT_LIMITS, LoadLimits
from sos_core.imaging.series import open_scan
from sos_core.imaging.slice_header import PARSE_ERRORS
from sos_core.imaging.study import Study

logger = logging.getLogger(__name__)

# Lenient on purpose: PS3.10 allows only A-Z 0-9 _ (8 characters), exports often use more.
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,63}")
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def open_dicomdir(
    path: Path, *, series: str | None = None, limits: LoadLimits = DEFAULT_LIMITS
) -> Study:
    """Open the (only, or chosen) image series listed in a DICOMDIR.

    Parameters
    ----------
    path
        The DICOMDIR file.
    series
        `SeriesInfo.key` of the series to open; None opens the only image series.
    limits
        Header and pixel budgets.

    Raises
    ------
    NotAnImage
        The file is not a DICOMDIR.
    CorruptFile
        The DICOMDIR cannot be parsed.
    NoImagesFound, SeriesNotChosen, InconsistentSeries
        As for a folder.
    """
    path = Path(path)
    return open_scan(scan_dicomdir(path, limits=limits), where=path, series=series, limits=limits)


def scan_dicomdir(path: Path, *, limits: LoadLimits = DEFAULT_LIMITS) -> FolderScan:
    """Header-only scan of the files a DICOMDIR references (those inside its folder)."""
    files, notes = referenced_files(path, limits=limits)
    scan = scan_paths(files, limits=limits)
    return FolderScan(scan.headers, tuple(notes) + scan.warnings, scan.n_files)


def referenced_files(
    path: Path, *, limits: LoadLimits = DEFAULT_LIMITS
) -> tuple[list[Path], list[str]]:
    """The files a DICOMDIR lists that resolve inside its folder, and reviewer notes."""
    records = _records(path, limits)
    root = path.parent.resolve()
    files: list[Path] = []
    seen: set[Path] = set()
    outside = missing = 0
    for record in records:
        try:
            file_id = record.get("ReferencedFileID")
        except PARSE_ERRORS:
            file_id = None
        if not file_id:
            continue
        target = resolve_inside(root, file_id)
        if target is None:
            outside += 1
            continue
        if target in seen:
            continue
        seen.add(target)
        if target.is_file():
            files.append(target)
        else:
            missing += 1
    notes = []
    if outside:
        logger.warning("%d DICOMDIR entries point outside its folder; skipped", outside)
        notes.append(
            f"{outside} entries of the DICOMDIR point outside its folder or are not valid "
            "file names; they were ignored for safety."
        )
    if missing:
        notes.append(f"{missing} files listed in the DICOMDIR are missing from the disc or folder.")
    return files, notes


def resolve_inside(root: Path, file_id: str | Iterable[object]) -> Path | None:
    """The path a ReferencedFileID names under `root`, or None if it is unsafe or escapes.

    `root` must already be resolved. Every component must be a plain name; the joined path is
    resolved (following symlinks) and must stay inside `root`.
    """
    parts = [file_id] if isinstance(file_id, str) else list(file_id)
    names = [str(p).rstrip("\x00 ") for p in parts]
    if not names or not all(_COMPONENT.fullmatch(n) and n.strip(".") for n in names):
        return None
    target = root.joinpath(*names).resolve()
    return target if target.is_relative_to(root) and target != root else None


def _records(path: Path, limits: LoadLimits) -> list:
    """The directory records of a DICOMDIR, read within the header budget."""
    if path.stat().st_size > limits.max_header_bytes:
        raise CorruptFile(
            f"{path.name} is far larger than a DICOMDIR index can be, so it was not read.",
            path=path,
        )
    guards.prescan_element_lengths(path, limits)
    try:
        ds = dcmread(path, force=True)
        records = ds.get("DirectoryRecordSequence")
        sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "")) if ds.file_meta else ""
    except PARSE_ERRORS as exc:
        raise CorruptFile(
            f"{path.name} is damaged and cannot be read as a DICOMDIR index; open the folder "
            "that holds the images instead.",
            path=path,
        ) from exc
    if records is None and sop_class != _MEDIA_STORAGE_DIRECTORY:
        raise NotAnImage(
            f"{path.name} is not a DICOMDIR index; open the folder that holds the images instead.",
            path=path,
        )
    return list(records or [])
