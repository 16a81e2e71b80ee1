"""A folder of cases as a review worklist: discovery, status, and review-priority order.

Pure Python (no Qt): the desktop's worklist panel shows what these functions return. Priority
puts what most needs an expert first: flagged predictions, then the most uncertain ones, then
cases not yet predicted, and reviewed cases last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sos_core.dataset_manifest import MANIFEST_NAME, RASTER_SUFFIXES, read_cases
from sos_core.errors import ParameterError

logger = logging.getLogger(__name__)

CaseStatus = Literal["new", "predicted", "flagged", "confirmed", "corrected", "labelled"]
STATUSES: tuple[CaseStatus, ...] = (
    "new",
    "predicted",
    "flagged",
    "confirmed",
    "corrected",
    "labelled",
)
"""`labelled`: an expert stage given while no prediction existed (e.g. no model installed)."""

REVIEWED: frozenset[str] = frozenset({"confirmed", "corrected", "labelled"})
_RANK = {"flagged": 0, "predicted": 1, "new": 2}
_RASTER_MODALITY = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}


@dataclass(frozen=True, slots=True)
class WorklistEntry:
    """One case of a worklist.

    case_id: pseudonymous id derived from the path (never the path itself; DI-5).
    path: the file or series folder to open; shown by base name only, never logged.
    modality: DICOM modality or PNG/JPEG/TIFF; "" until known.
    probabilities: the last prediction's, in scheme order; () when not predicted.
    pixel_spacing: (row mm, col mm) from a dataset manifest, for rasters that carry none.
    """

    case_id: str
    path: Path
    display_name: str
    modality: str = ""
    status: CaseStatus = "new"
    predicted_stage: int | None = None
    probabilities: tuple[float, ...] = ()
    flags: tuple[str, ...] = ()
    reviewer: str = ""
    labelled_stage: int | None = None
    pixel_spacing: tuple[float, float] | None = None

    @property
    def uncertainty(self) -> float | None:
        """1 - (top probability - second probability): 0 = certain, 1 = a tie; None if unknown."""
        return margin_uncertainty(self.probabilities) if self.probabilities else None


def margin_uncertainty(probabilities: Sequence[float]) -> float:
    """Margin uncertainty in [0, 1] of one probability vector (1 = the top two are tied)."""
    if not probabilities:
        raise ParameterError("an uncertainty needs at least one probability.")
    top = sorted(probabilities, reverse=True)
    second = top[1] if len(top) > 1 else 0.0
    return float(min(1.0, max(0.0, 1.0 - (top[0] - second))))


def case_id_for(path: Path) -> str:
    """A stable pseudonymous id for a case path (same path, same id; no path text inside)."""
    digest = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()
    return f"case-{digest[:10]}"


def with_prediction(
    entry: WorklistEntry, stage: int, probabilities: Sequence[float], flags: Sequence[str]
) -> WorklistEntry:
    """The entry after a prediction; a reviewed case keeps its reviewed status."""
    status: CaseStatus = entry.status
    if entry.status not in REVIEWED:
        status = "flagged" if flags else "predicted"
    return dataclasses.replace(
        entry,
        status=status,
        predicted_stage=stage,
        probabilities=tuple(float(p) for p in probabilities),
        flags=tuple(flags),
    )


def with_label(entry: WorklistEntry, stage: int, reviewer: str) -> WorklistEntry:
    """The entry after an expert label: confirmed, corrected, or labelled (no prediction)."""
    if entry.predicted_stage is None:
        status: CaseStatus = "labelled"
    elif stage == entry.predicted_stage:
        status = "confirmed"
    else:
        status = "corrected"
    return dataclasses.replace(entry, status=status, labelled_stage=stage, reviewer=reviewer)


def without_label(entry: WorklistEntry) -> WorklistEntry:
    """The entry after its label was undone: back to its prediction status (or new)."""
    if entry.predicted_stage is None:
        status: CaseStatus = "new"
    else:
        status = "flagged" if entry.flags else "predicted"
    return dataclasses.replace(entry, status=status, labelled_stage=None, reviewer="")


def priority_key(entry: WorklistEntry) -> tuple[int, int, float, str, str]:
    """Sort key: flagged, then predicted by uncertainty, then new, then reviewed."""
    rank = 3 if entry.status in REVIEWED else _RANK[entry.status]
    unc = entry.uncertainty
    return (
        rank,
        -len(entry.flags),
        -(unc if unc is not None else 0.0),
        entry.display_name,
        entry.case_id,
    )


def order_worklist(
    entries: Iterable[WorklistEntry],
    *,
    sort: Literal["priority", "name", "status"] = "priority",
    statuses: Collection[str] | None = None,
    text: str = "",
) -> list[WorklistEntry]:
    """Filter by status and name text (case-insensitive), then sort.

    Parameters
    ----------
    sort
        "priority" (review priority), "name" (display name) or "status" (status order).
    statuses
        Keep only these statuses; None keeps all.
    text
        Keep only entries whose display name contains this text.
    """
    if sort not in ("priority", "name", "status"):
        raise ParameterError(f"unknown worklist order {sort!r}; use priority, name or status.")
    needle = text.strip().lower()
    kept = [
        e
        for e in entries
        if (statuses is None or e.status in statuses) and needle in e.display_name.lower()
    ]
    if sort == "name":
        return sorted(kept, key=lambda e: (e.display_name.lower(), e.case_id))
    if sort == "status":
        return sorted(kept, key=lambda e: (STATUSES.index(e.status), priority_key(e)))
    return sorted(kept, key=priority_key)


def discover_cases(folder: Path) -> list[WorklistEntry] | None:
    """The cases of a folder of cases, or None when the folder is a single study.

    A folder is a worklist when it holds a `manifest.jsonl` (a dataset folder: one case per
    line's `file`), or sub-folders, or more than one raster image. Then every sub-folder, raster
    and loose file is a case. A folder of loose DICOM files only (a series) or with a DICOMDIR is
    one study. Paths named by a manifest must stay inside the folder (DC-5).
    """
    folder = Path(folder)
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        return _from_manifest(folder)
    if (folder / "DICOMDIR").is_file():
        return None
    children = sorted(
        (c for c in folder.iterdir() if not c.name.startswith(".")), key=lambda c: c.name
    )
    subdirs = [c for c in children if c.is_dir() and any(c.iterdir())]
    files = [c for c in children if c.is_file()]
    rasters = [c for c in files if c.suffix.lower() in RASTER_SUFFIXES]
    if not subdirs and len(rasters) < 2:
        return None
    return [_entry(p, _RASTER_MODALITY.get(p.suffix.lower(), "")) for p in subdirs + files]


def _entry(path: Path, modality: str, spacing: tuple[float, float] | None = None) -> WorklistEntry:
    return WorklistEntry(
        case_id=case_id_for(path),
        path=path,
        display_name=path.name,
        modality=modality,
        pixel_spacing=spacing,
    )


def _from_manifest(folder: Path) -> list[WorklistEntry]:
    root = folder.resolve()
    entries: list[WorklistEntry] = []
    seen: set[Path] = set()
    for case in read_cases(folder):
        path = case.path
        modality = case.modality or _RASTER_MODALITY.get(path.suffix.lower(), "")
        # A series is named by one of its files or its folder; the case is the series folder.
        case_path = path.parent if _in_series_folder(path, root) else path
        if case_path in seen:
            continue
        seen.add(case_path)
        # the manifest's spacing matters for rasters only: DICOM headers carry their own
        spacing = case.pixel_spacing if case_path.suffix.lower() in RASTER_SUFFIXES else None
        entries.append(_entry(case_path, modality, spacing))
    return entries


def _in_series_folder(path: Path, root: Path) -> bool:
    if path.suffix.lower() != ".dcm" or path.parent == root:
        return False
    return sum(1 for _ in path.parent.glob("*.dcm")) > 1


__all__ = [
    "MANIFEST_NAME",
    "REVIEWED",
    "STATUSES",
    "CaseStatus",
    "WorklistEntry",
    "case_id_for",
    "discover_cases",
    "margin_uncertainty",
    "order_worklist",
    "priority_key",
    "with_label",
    "with_prediction",
    "without_label",
]
