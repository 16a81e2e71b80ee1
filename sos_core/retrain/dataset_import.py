"""Import a labelled dataset folder (manifest.jsonl + images) into a review store.

Used to fix the locked validation set when a store is set up from an existing labelled
collection (`import_locked_set`), and by tests and benchmarks to fill a store with phantom
cases. Every image goes through `ReviewStore.ingest` (de-identification, content hashing);
each case without a label gets one expert label from the manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sos_core.retrain.locked_set import LockedSet, fix_locked_set, grow_locked_set, load_locked_set
from sos_core.retrain.training_data import read_image_file

if TYPE_CHECKING:
    from sos_core.review.store import ReviewStore

logger = logging.getLogger(__name__)


def import_labelled_dataset(
    store: ReviewStore,
    dataset_dir: str | Path,
    *,
    reviewer: str,
    splits: tuple[str, ...] | None = None,
    source_kind: Literal["raster", "synthetic"] = "raster",
    confirm_no_burned_in: bool = False,
) -> list[str]:
    """Ingest the dataset's cases (optionally only some splits) and label the unlabelled ones.

    Parameters
    ----------
    reviewer
        Who vouches for the manifest's stages and boxes (stored with each label).
    splits
        Only rows of these manifest splits; all rows when None.
    source_kind
        "raster" for images from elsewhere, "synthetic" for phantom images.
    confirm_no_burned_in
        The reviewer confirms the images show no identifiers (else raster cases are held out
        of the retraining queue until someone confirms, DI-3).

    Returns
    -------
    list[str]
        The store case ids, in manifest order (existing cases included, never relabelled).
    """
    from sos_core.distill.dataset import read_manifest

    rows = read_manifest(dataset_dir)
    if splits is not None:
        rows = [r for r in rows if r.split in splits]
    case_ids = []
    for row in rows:
        result = store.ingest(
            read_image_file(row.path),
            source_kind=source_kind,
            modality=row.modality,
            pixel_spacing=row.pixel_spacing,
            burn_in_confirmed_by=reviewer if confirm_no_burned_in else None,
        )
        case_id = result.case.case_id
        if store.current_label(case_id) is None:
            store.add_label(
                case_id, stage=row.stage, box=row.box, reviewer=reviewer, reason="confirmed"
            )
        case_ids.append(case_id)
    logger.info("imported %d labelled case(s)", len(case_ids))
    return case_ids


def import_locked_set(
    store: ReviewStore,
    dataset_dir: str | Path,
    *,
    reviewer: str,
    splits: tuple[str, ...] | None = ("test",),
    source_kind: Literal["raster", "synthetic"] = "raster",
    reason: str = "imported labelled dataset",
) -> LockedSet:
    """Import a labelled dataset and lock its cases: fixes the set, or grows it (audited)."""
    case_ids = import_labelled_dataset(
        store, dataset_dir, reviewer=reviewer, splits=splits, source_kind=source_kind
    )
    if load_locked_set(store).generation == 0:
        return fix_locked_set(store, case_ids, actor=reviewer)
    return grow_locked_set(store, case_ids, actor=reviewer, reason=reason)
