"""Export the retraining queue as a dataset folder, in the format the phantom writes.

The folder holds `images/<case_id>.png` (16-bit grey PNG) and `manifest.jsonl`, one JSON object
per case with `file`, `modality`, `stage`, `sos_box` ([x0, y0, x1, y1] in the image's pixels),
`pixel_spacing` ([row, col] mm or null), `split` and `case_id`, plus `label_id`, `box_source`
and `intensity` (stored value = png * slope + intercept). Images come from the verified blobs,
never from the live database file (DB-6), and only de-identified data is written (DI-1).
Locked validation cases are never exported for training (RG-4): the queue leaves them out by
case id, and a case whose exported pixels equal a locked case's (the same picture ingested
again under another id) is skipped here too. The folder is built under a temporary name and
renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sos_core.errors import ParameterError
from sos_core.review.blobs import encode_pixels
from sos_core.review.deid import content_hash
from sos_core.review.snapshot import fsync_dir

if TYPE_CHECKING:
    from sos_core.review.store import ReviewStore

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
IMAGE_DIR = "images"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote: the folder, the labels it holds and the counts per stage.

    skipped_locked: queued cases left out because their pixels are a locked validation case's.
    """

    folder: Path
    label_ids: tuple[int, ...]
    per_stage: dict[int, int]
    per_reviewer: dict[str, int]
    skipped_locked: int = 0


def to_uint16(pixels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Map pixels to uint16 losslessly where possible; returns (png, slope, intercept)."""
    arr = np.asarray(pixels)
    if arr.dtype in (np.uint8, np.uint16):
        return arr.astype(np.uint16), 1.0, 0.0
    lo, hi = float(arr.min()), float(arr.max())
    if arr.dtype.kind in "iu" and hi - lo <= 65535:
        intercept = 0.0 if lo >= 0 and hi <= 65535 else lo
        return (arr.astype(np.int64) - int(intercept)).astype(np.uint16), 1.0, intercept
    slope = (hi - lo) / 65535.0 or 1.0
    png = np.rint((arr.astype(np.float64) - lo) / slope)
    return np.clip(png, 0, 65535).astype(np.uint16), slope, lo


def split_for(case_id: str, val_fraction: float) -> str:
    """A stable split from the case id alone: the same case always lands in the same split."""
    bucket = int(hashlib.sha256(case_id.encode("ascii")).hexdigest()[:8], 16) % 10_000
    return "val" if bucket < round(val_fraction * 10_000) else "train"


def export_queue(
    store: ReviewStore,
    dest: str | os.PathLike[str],
    *,
    val_fraction: float = 0.0,
    actor: str = "export",
) -> ExportSummary:
    """Write the current retraining queue to the new dataset folder `dest`.

    Parameters
    ----------
    val_fraction
        Share of cases put in split "val" (by a hash of the case id); the rest are "train".
    actor
        Who asked for the export, for the audit log.

    Raises
    ------
    ParameterError
        `dest` exists already (an export never merges into or overwrites a folder).
    BlobCorrupt
        A stored image no longer matches its SHA-256.
    """
    folder = Path(dest)
    if folder.exists():
        raise ParameterError(f"{folder.name} exists already; choose a new folder for the export.")
    if not 0.0 <= val_fraction <= 1.0:
        raise ParameterError("The validation fraction must be between 0 and 1.")
    q = store.queue()
    locked_keys = {pixel_key(store.pixels(c)) for c in sorted(store.locked_case_ids())}
    token = secrets.token_hex(4)
    partial = folder.with_name(f".{folder.name}.{token}.partial")
    (partial / IMAGE_DIR).mkdir(parents=True)
    lines: list[str] = []
    written = []
    for item in q.items:
        png, slope, intercept = to_uint16(store.blobs.get_array(item.blob))
        if content_hash(png) in locked_keys:
            continue
        written.append(item)
        rel = f"{IMAGE_DIR}/{item.case_id}.png"
        _write_durable(partial / rel, encode_pixels(png))
        row = {
            "file": rel,
            "modality": item.modality,
            "stage": item.stage,
            "sos_box": list(item.box),
            "pixel_spacing": list(item.pixel_spacing) if item.pixel_spacing else None,
            "split": split_for(item.case_id, val_fraction),
            "case_id": item.case_id,
            "label_id": item.label_id,
            "box_source": item.box_source,
            "intensity": {"slope": slope, "intercept": intercept},
        }
        lines.append(json.dumps(row, sort_keys=True))
    _write_durable(partial / MANIFEST_NAME, ("\n".join(lines) + "\n" if lines else "").encode())
    fsync_dir(partial / IMAGE_DIR)
    fsync_dir(partial)
    os.rename(partial, folder)
    fsync_dir(folder.parent)
    ids = tuple(i.label_id for i in written)
    skipped = len(q.items) - len(written)
    store.record(
        actor=actor,
        action="queue.export",
        subject=f"export:{token}",
        details={"label_ids": list(ids), "n_cases": len(ids), "skipped_locked": skipped},
    )
    logger.info("exported %d labelled case(s) to a dataset folder", len(ids))
    per_stage = dict(sorted(Counter(i.stage for i in written).items()))
    per_reviewer = dict(sorted(Counter(i.reviewer for i in written).items()))
    return ExportSummary(folder, ids, per_stage, per_reviewer, skipped)


def pixel_key(pixels: np.ndarray) -> str:
    """SHA-256 of the pixels as any dataset export holds them (16-bit, `to_uint16`): the same
    picture under another dtype or case id has the same key (RG-4)."""
    return content_hash(to_uint16(np.asarray(pixels))[0])


def _write_durable(path: Path, data: bytes) -> None:
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
