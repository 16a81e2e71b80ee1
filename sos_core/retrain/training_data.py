"""The retraining data: queue cases written as a dataset folder, and their lineage manifest.

The dataset folder is the DESIGN.md format (`manifest.jsonl` + `images/<case_id>.png`) that
`sos_core.distill` trains on. The *training manifest* is the list of labels a run trained on,
rebuilt from the store alone, so its hash in a model's lineage can be checked later (RG-8).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sos_core.errors import CaseNotFound, ParameterError
from sos_core.retrain.files import sha256_json, write_new_file
from sos_core.review.blobs import decode_pixels, encode_pixels
from sos_core.review.export import IMAGE_DIR, MANIFEST_NAME, to_uint16
from sos_core.review.snapshot import fsync_dir

if TYPE_CHECKING:
    from sos_core.review.records import Box, QueueItem
    from sos_core.review.store import ReviewStore

logger = logging.getLogger(__name__)

# Store modalities (upper-case DICOM codes or the caller's word) → the training vocabulary the
# model cards use. CT/CBCT cases are reviewed on their mid-sagittal slice.
MODALITY_MAP = {
    "SLICE": "slice",
    "CT": "slice",
    "CBCT": "slice",
    "CEPH": "ceph",
    "DX": "ceph",
    "CR": "ceph",
    "DR": "ceph",
    "PX": "ceph",
    "RASTER": "ceph",
    "OT": "ceph",
}


def training_modality(store_modality: str) -> str:
    """The model-card modality ("slice", "ceph", ...) of a store modality code."""
    return MODALITY_MAP.get(store_modality.upper(), store_modality.lower())


@dataclass(frozen=True, slots=True)
class DatasetRow:
    """One labelled case to write: its current label and where its pixels are."""

    case_id: str
    label_id: int
    stage: int
    box: Box
    modality: str
    pixel_spacing: tuple[float, float] | None
    blob: str
    box_source: str = "expert"


def row_from_queue(item: QueueItem) -> DatasetRow:
    """The dataset row of a retraining-queue item."""
    return DatasetRow(
        case_id=item.case_id,
        label_id=item.label_id,
        stage=item.stage,
        box=item.box,
        modality=item.modality,
        pixel_spacing=item.pixel_spacing,
        blob=item.blob,
        box_source=item.box_source,
    )


def per_stage_counts(items: Iterable[QueueItem]) -> dict[int, int]:
    """Labels per stage, in stage order."""
    out: dict[int, int] = {}
    for item in items:
        out[item.stage] = out.get(item.stage, 0) + 1
    return dict(sorted(out.items()))


def stratified_split(rows: Sequence[DatasetRow], val_fraction: float) -> dict[str, str]:
    """case id → "train"/"val": per stage, every k-th case in pixel-hash order goes to val.

    Ordered by the blob's SHA-256 (the pixels), not by the case id, which is a pseudonym under
    each store's own secret: the same labelled images give the same split in every store, so a
    run is reproducible from its data. Stratified, so a 20-label queue still validates on every
    stage it has; each split keeps at least one case when there are two or more.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ParameterError("The validation fraction must lie strictly between 0 and 1.")
    out: dict[str, str] = {}
    by_stage: dict[int, list[DatasetRow]] = {}
    for row in rows:
        by_stage.setdefault(row.stage, []).append(row)
    period = max(2, round(1.0 / val_fraction))
    for stage_rows in by_stage.values():
        ordered = sorted(stage_rows, key=lambda r: (r.blob, r.case_id))
        for i, row in enumerate(ordered):
            out[row.case_id] = "val" if i % period == period - 1 else "train"
    by_blob = sorted(rows, key=lambda r: (r.blob, r.case_id))
    if len(rows) >= 2 and "val" not in out.values():
        out[by_blob[0].case_id] = "val"
    if len(rows) >= 2 and "train" not in out.values():
        out[by_blob[-1].case_id] = "train"
    return out


def write_dataset(
    store: ReviewStore, rows: Iterable[DatasetRow], splits: dict[str, str], dest: Path
) -> Path:
    """Write `rows` as the new dataset folder `dest` (images from verified blobs, DB-6)."""
    if dest.exists():
        raise ParameterError(f"{dest.name} exists already; a dataset is never written over.")
    (dest / IMAGE_DIR).mkdir(parents=True)
    lines = []
    for row in rows:
        png, slope, intercept = to_uint16(store.blobs.get_array(row.blob))
        rel = f"{IMAGE_DIR}/{row.case_id}.png"
        write_new_file(dest / rel, encode_pixels(png))
        record = {
            "file": rel,
            "modality": training_modality(row.modality),
            "stage": row.stage,
            "sos_box": list(row.box),
            "pixel_spacing": list(row.pixel_spacing) if row.pixel_spacing else None,
            "split": splits.get(row.case_id, "test"),
            "case_id": row.case_id,
            "label_id": row.label_id,
            "box_source": row.box_source,
            "intensity": {"slope": slope, "intercept": intercept},
        }
        lines.append(json.dumps(record, sort_keys=True))
    write_new_file(dest / MANIFEST_NAME, ("\n".join(lines) + "\n" if lines else "").encode())
    fsync_dir(dest / IMAGE_DIR)
    fsync_dir(dest)
    return dest


def read_image_file(path: Path) -> np.ndarray:
    """The raw 2-D pixels of a dataset image (PNG/TIFF/JPEG/NPZ, or anything `open_study` reads)."""
    data = path.read_bytes()
    try:
        return decode_pixels(data)
    except ValueError:
        pass
    from sos_core.imaging import open_study
    from sos_core.preprocess import image_from_study

    pixels, _ = image_from_study(open_study(path))
    return np.asarray(pixels)


# --- lineage manifest (RG-8) ---------------------------------------------------------------


def training_manifest(store: ReviewStore, label_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The rows a run trained on, rebuilt from the store: label, case, pixel hash, stage, box.

    Raises
    ------
    CaseNotFound
        A label id is not in the store.
    """
    rows = []
    for label_id in sorted({int(i) for i in label_ids}):
        chain = store.chain(label_id)
        if not chain:
            raise CaseNotFound(f"Label {label_id} is not in this review store.")
        label = chain[0]
        rows.append(
            {
                "label_id": label.id,
                "case_id": label.case_id,
                "content_hash": store.case(label.case_id).content_hash,
                "stage": label.stage,
                "box": [float(v) for v in label.box],
            }
        )
    return rows


def manifest_hash(rows: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the canonical JSON of a training manifest (order-independent by label id)."""
    return sha256_json(sorted(rows, key=lambda r: int(r["label_id"])))


DATA_ACTIONS = ("training.use", "retrain.data")


def used_label_ids(store: ReviewStore, run_id: str) -> list[int]:
    """The label ids the store's audit log records for training run `run_id`.

    `retrain.data` is written by every run before training (promoted or not); `training.use`
    by `ReviewStore.mark_used` once a promoted model has absorbed them.
    """
    ids: set[int] = set()
    for entry in store.audit_entries(subject=f"run:{run_id}"):
        if entry.action in DATA_ACTIONS:
            ids.update(int(i) for i in entry.details.get("label_ids", []))
    return sorted(ids)


def remove_tree(folder: Path) -> None:
    """Delete a work folder we created (images and checkpoints of a finished run)."""
    import shutil

    if folder.exists():
        shutil.rmtree(folder, ignore_errors=False)


__all__ = [
    "MODALITY_MAP",
    "DatasetRow",
    "manifest_hash",
    "per_stage_counts",
    "read_image_file",
    "remove_tree",
    "row_from_queue",
    "stratified_split",
    "training_manifest",
    "training_modality",
    "used_label_ids",
    "write_dataset",
]
