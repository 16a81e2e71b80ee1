"""Scoring students on the locked validation set, overall and per stage, for the gate.

The locked cases are written from the store's verified blobs as a dataset folder (split
"test"), each with its current expert label, and read back through the very preprocessing
training and inference use. Models run on the CPU in eval mode with their stored calibration
temperature, so the scores behind a gate decision can be recomputed bit for bit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sos_core.errors import CorruptStore
from sos_core.retrain.files import sha256_json
from sos_core.retrain.training_data import DatasetRow, write_dataset

if TYPE_CHECKING:
    from sos_core.retrain.locked_set import LockedSet
    from sos_core.review.store import ReviewStore

logger = logging.getLogger(__name__)

OVERALL_KEYS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "kappa_quadratic",
    "ece",
    "nll",
    "pointing_game",
)


def write_locked_dataset(store: ReviewStore, locked: LockedSet, dest: Path) -> dict[str, Any]:
    """Write the locked cases with their current labels; returns what was used (for lineage).

    Raises
    ------
    CorruptStore
        A locked case's pixels no longer match the hash recorded when it was locked.
    """
    rows = []
    skipped = 0
    for member in locked.members:
        case = store.case(member.case_id)
        if case.content_hash != member.content_hash:
            raise CorruptStore(
                "A case of the locked validation set no longer matches its recorded pixels; "
                "restore the store from a backup.",
                path=store.db_path,
            )
        label = store.current_label(member.case_id)
        if label is None:
            skipped += 1
            continue
        rows.append(
            DatasetRow(
                case_id=case.case_id,
                label_id=label.id,
                stage=label.stage,
                box=label.box,
                modality=case.modality,
                pixel_spacing=case.pixel_spacing,
                blob=case.blob,
                box_source=label.box_source,
            )
        )
    write_dataset(store, rows, {r.case_id: "test" for r in rows}, dest)
    label_ids = sorted(r.label_id for r in rows)
    return {
        "locked_manifest_hash": locked.manifest_hash,
        "locked_generation": locked.generation,
        "label_ids": label_ids,
        "labels_hash": sha256_json(label_ids),
        "n_cases": len(rows),
        "unlabelled": skipped,
    }


def evaluate_models(
    model_dirs: Mapping[str, Path], dataset: Path, *, modalities: tuple[str, ...] | None
) -> dict[str, dict[str, Any]]:
    """Score each student folder on the dataset's "test" split; name → evaluation dict.

    Each evaluation holds `n`, `overall` (OVERALL_KEYS), `per_stage` (stage, name, support,
    precision, recall, f1, pointing_game), `confusion_matrix`, `model` and `temperature`.
    """
    from sos_core.distill.dataset import load_cases_sized, read_manifest, select
    from sos_core.distill.evaluation import model_outputs, score
    from sos_core.models.model_file import load_model

    records = select(read_manifest(dataset), "test", modalities or None)
    loaded: dict[tuple[int, ...], Any] = {}
    out: dict[str, dict[str, Any]] = {}
    for name, folder in model_dirs.items():
        model, card = load_model(folder, device="cpu")
        sizes = tuple(card.input_size_for(r.modality) for r in records)
        if sizes not in loaded:  # each case at the size this model reads its modality at
            loaded[sizes] = load_cases_sized(records, card.input_size_for)
        cases = loaded[sizes]
        n_stages = len(card.stage_names)
        if not len(cases):
            out[name] = _empty(card.version, card.stage_names, card.temperature)
            continue
        outputs = model_outputs(
            model,
            cases,
            crop=False,
            crop_size=card.input_size[0],
            crop_context=float(card.preprocessing.get("crop_context", 1.5)),
        )
        metrics = score(outputs, cases.labels, card.temperature, n_stages)
        out[name] = {
            "model": card.version,
            "temperature": card.temperature,
            "n": int(len(cases)),
            "overall": {k: float(metrics[k]) for k in OVERALL_KEYS},
            "per_stage": _per_stage(outputs, cases.labels, metrics, card.stage_names),
            "confusion_matrix": metrics["confusion_matrix"],
        }
    return out


def _per_stage(
    outputs: Any, labels: np.ndarray, metrics: Mapping[str, Any], names: tuple[str, ...]
) -> list[dict[str, Any]]:
    from sos_core.distill.metrics import per_class_precision_recall_f1

    pred = outputs.logits.argmax(axis=1)
    precision, recall, f1, support = per_class_precision_recall_f1(labels, pred, len(names))
    rows = []
    for i, name in enumerate(names):
        mask = labels == i
        pg = float(outputs.hits[mask].mean()) if mask.any() else 0.0
        rows.append(
            {
                "stage": i,
                "name": name,
                "support": int(support[i]),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "pointing_game": pg,
            }
        )
    return rows


def _empty(version: str, names: tuple[str, ...], temperature: float) -> dict[str, Any]:
    nan = None  # JSON null: nothing was measured
    return {
        "model": version,
        "temperature": temperature,
        "n": 0,
        "overall": dict.fromkeys(OVERALL_KEYS, nan),
        "per_stage": [
            {
                "stage": i,
                "name": n,
                "support": 0,
                "precision": nan,
                "recall": nan,
                "f1": nan,
                "pointing_game": nan,
            }
            for i, n in enumerate(names)
        ],
        "confusion_matrix": [[0] * len(names) for _ in names],
    }
