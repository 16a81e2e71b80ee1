"""What a dataset folder's `manifest.jsonl` says about its images, read for viewing.

A dataset folder (written by `sos phantom` or the queue export) holds one JSON object per case
with at least `file` (relative to the folder), `modality` and `pixel_spacing` ([row, col] mm).
A PNG carries no trustworthy spacing of its own, so the viewer takes it from here. Unlike the
training reader (`sos_core.distill.dataset.read_manifest`), this one is lenient: a bad line is
skipped with a warning, never an error, because a worklist must still open. It trusts nothing
in the file: a `file` that resolves outside the folder (`..`, an absolute path, a symlink out)
is skipped (DC-5), a spacing that is not two millimetre values is dropped, and an oversized
manifest is not read at all.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # ~150k phantom rows; beyond that it is not ours
SEARCH_LEVELS = 2  # the image's folder and its parent (`slices/x.png` under the dataset root)


@dataclass(frozen=True, slots=True)
class ManifestCase:
    """One usable manifest row.

    path: the resolved file or folder it names, inside the manifest's folder.
    modality: as the manifest says ("ceph", "slice", "cbct", "DX", ...); "" when absent.
    pixel_spacing: (row mm, col mm), or None when absent or not plausible.
    """

    path: Path
    modality: str
    pixel_spacing: tuple[float, float] | None


def read_cases(folder: Path) -> list[ManifestCase]:
    """The usable rows of `folder/manifest.jsonl` in file order, each path at most once.

    An absent, unreadable or oversized manifest gives an empty list.
    """
    manifest = Path(folder) / MANIFEST_NAME
    try:
        stat = manifest.stat()
    except OSError:
        return []
    # Cached by (folder, mtime, size): predicting a folder of N images asks once per image.
    return list(_read_cases(Path(folder), stat.st_mtime_ns, stat.st_size, MAX_MANIFEST_BYTES))


@functools.lru_cache(maxsize=8)
def _read_cases(folder: Path, _mtime_ns: int, _size: int, limit: int) -> tuple[ManifestCase, ...]:
    manifest = folder / MANIFEST_NAME
    try:
        if manifest.stat().st_size > limit:
            logger.warning("%s is larger than %d bytes; not read", MANIFEST_NAME, limit)
            return ()
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    root = folder.resolve()
    cases: list[ManifestCase] = []
    seen: set[Path] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            rel = record["file"]
        except (json.JSONDecodeError, KeyError, TypeError):
            logger.warning("manifest line %d is not a case record; skipped", n)
            continue
        if not isinstance(rel, str) or not rel:
            logger.warning("manifest line %d has no file name; skipped", n)
            continue
        try:
            path = (root / rel).resolve()
        except (OSError, RuntimeError, ValueError):  # a NUL byte, a symlink loop
            path = root
        if not path.is_relative_to(root) or path == root or path in seen:
            logger.warning("manifest line %d points outside the folder or repeats; skipped", n)
            continue
        seen.add(path)
        modality = record.get("modality", "")
        cases.append(
            ManifestCase(
                path=path,
                modality=modality if isinstance(modality, str) else "",
                pixel_spacing=_spacing(record.get("pixel_spacing")),
            )
        )
    return tuple(cases)


def case_for(image: Path) -> ManifestCase | None:
    """The dataset-manifest row of the raster `image`, else None.

    Looks for `manifest.jsonl` in the image's folder and its parent. DICOM files and series
    carry their own spacing and modality, so they get None: the header wins over a manifest.
    """
    image = Path(image)
    if image.suffix.lower() not in RASTER_SUFFIXES:
        return None
    try:
        target = image.resolve()
        folders = [f for f in list(target.parents)[:SEARCH_LEVELS] if (f / MANIFEST_NAME).is_file()]
    except (OSError, RuntimeError, ValueError):  # unreadable folder, symlink loop, NUL byte
        return None  # opening the image will say what is wrong with its path
    for folder in folders:
        for case in read_cases(folder):
            if case.path == target:
                return case
    return None


def spacing_for(image: Path) -> tuple[float, float] | None:
    """The pixel spacing a dataset manifest gives for the raster `image`, else None."""
    case = case_for(image)
    return case.pixel_spacing if case else None


def modality_for(image: Path) -> str | None:
    """The modality ("slice", "ceph", ...) a dataset manifest gives for the raster `image`."""
    case = case_for(image)
    return case.modality or None if case else None


def _spacing(value: object) -> tuple[float, float] | None:
    """(row, col) mm when `value` is two plausible millimetre numbers (as `open_study` takes)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    row, col = float(value[0]), float(value[1])
    if not all(math.isfinite(v) and 0.0 < v < 100.0 for v in (row, col)):
        return None
    return row, col


__all__ = [
    "case_for",
    "modality_for",
    "MANIFEST_NAME",
    "RASTER_SUFFIXES",
    "ManifestCase",
    "read_cases",
    "spacing_for",
]
