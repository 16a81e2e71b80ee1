"""Records the review store returns: cases, predictions, labels and the retraining queue.

All are frozen; a label is never changed after it is written (RG-1): a correction is a new
`Label` whose `supersedes` names the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Box = tuple[float, float, float, float]
"""[x0, y0, x1, y1] in the case image's pixels: x along columns, y along rows, x0 < x1, y0 < y1."""

BoxSource = Literal["expert", "suggested"]
Reason = Literal["confirmed", "ambiguous", "artefact", "wrong_anatomy", "model_error"]
BurnIn = Literal["clear", "hold", "confirmed", "redacted"]


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """One de-identified 2-D image in the store.

    case_id: pseudonym (HMAC under the store's secret, DI-2); never a source UID or file name.
    content_hash: SHA-256 of dtype, shape and pixel bytes (the dedupe key).
    blob: SHA-256 name of the stored pixel file (16-bit PNG or NPZ) in the store's blob folder.
    shape: (rows, cols). pixel_spacing: mm per pixel (row, col), None when unknown.
    attributes: the allow-listed DICOM attributes kept for training (DI-1), JSON values only.
    patient_sex / patient_age_months: only with Retain Patient Characteristics; never a date.
    deid: de-identification provenance (profile, options, tool version).
    burn_in: "clear" (no reason to suspect text in the pixels), "hold" (not queued until an
        expert confirms no burned-in identifiers), "confirmed" (confirmed), "redacted" (an expert
        drew redaction boxes, applied before hashing and storing).
    """

    case_id: str
    content_hash: str
    blob: str
    modality: str
    shape: tuple[int, int]
    dtype: str
    pixel_spacing: tuple[float, float] | None
    source_kind: str
    source_label: str | None
    attributes: dict[str, Any]
    patient_sex: str | None
    patient_age_months: int | None
    deid: dict[str, Any]
    burn_in: BurnIn
    hold_reason: str | None
    created_at: str

    @property
    def queueable(self) -> bool:
        """True once nothing holds the case out of the retraining queue (DI-3)."""
        return self.burn_in != "hold"


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What `ReviewStore.ingest` did: `created` is False when the pixels were already stored."""

    case: CaseRecord
    created: bool


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """A stored model answer for a case. probabilities: one per stage, in scheme order."""

    id: int
    case_id: str
    model_version: str
    stage: int
    probabilities: tuple[float, ...]
    flags: tuple[str, ...]
    box: Box | None
    created_at: str


@dataclass(frozen=True, slots=True)
class Label:
    """An expert's stage and SOS crop box for a case; immutable once written (RG-1).

    id: the store-wide monotonic sequence number (never reused).
    created_at: UTC, ISO 8601 with a Z.
    prediction_id / model_version: the prediction this label answers, if any.
    supersedes: the id of the label this one corrects (same case), None for a first label.
    """

    id: int
    case_id: str
    stage: int
    box: Box
    box_source: BoxSource
    reason: Reason
    note: str
    reviewer: str
    created_at: str
    prediction_id: int | None
    model_version: str | None
    supersedes: int | None


@dataclass(frozen=True, slots=True)
class Retraction:
    """An expert's withdrawal of a case's label in force (e.g. undo of its first label; RG-1).

    Nothing is deleted: the label row stays readable, and this row says it is no longer in
    force, so the case counts as unlabelled until a new label is added. It carries no stage.
    """

    id: int
    label_id: int
    case_id: str
    reviewer: str
    note: str
    created_at: str


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One labelled case waiting to be trained on: its current label and what training needs."""

    case_id: str
    label_id: int
    stage: int
    box: Box
    box_source: BoxSource
    reviewer: str
    modality: str
    shape: tuple[int, int]
    pixel_spacing: tuple[float, float] | None
    blob: str


@dataclass(frozen=True, slots=True)
class RetrainQueue:
    """Labelled cases the active model has not learned, with counts per stage and per reviewer.

    A label counts as learned once a promoted model trained on it, and as not learned again if
    that model was rolled back; a rejected candidate's labels stay here. Cases whose label was
    withdrawn are unlabelled, hence absent.
    held_cases: labelled cases kept out until an expert confirms no burned-in identifiers.
    locked_cases: labelled cases of the locked validation set, which is never trained on (RG-4);
        they are in neither `items` nor the counts.
    """

    items: tuple[QueueItem, ...]
    per_stage: dict[int, int]
    per_reviewer: dict[str, int]
    held_cases: int
    locked_cases: int = 0

    def __len__(self) -> int:
        return len(self.items)
