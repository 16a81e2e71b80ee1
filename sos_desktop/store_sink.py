"""`StoreLabelSink`: the review panel's labels written to the review store (`sos_core.review`).

Plain, blocking Python, called only from the label worker (`LabelService`), never from the GUI
thread. A save is one sequence of store calls, each acknowledged after COMMIT (DB-2): ingest the
reviewed 2-D image (deduplicated by content, so re-saving a case reuses it), record the burn-in
confirmation if the expert gave it (DI-3), store the prediction the label answers (RG-3), then
append the label, superseding the case's label in force.

Undo never deletes (RG-1). A correction is withdrawn by a new label that supersedes it and
carries the content that was in force before (the previous label's stage, box, reason and note).
The first label of a case has nothing before it: it is withdrawn by the store's retraction row
(`ReviewStore.retract_label`), and the case is unlabelled again (out of the retraining queue)
while the label row stays readable.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sos_core.errors import BurnedInAnnotation, LabelRejected, ParameterError
from sos_core.review import Label, ReviewStore
from sos_core.review.deid import content_hash
from sos_core.review.ingest import prepare_case
from sos_desktop.label_sink import CaseImage, CaseReviewState, ReviewDecision, SavedLabel

if TYPE_CHECKING:
    from sos_core.review import CaseRecord

logger = logging.getLogger(__name__)

UNDO_NOTE = "withdrawn by undo in the review app"


@dataclasses.dataclass(frozen=True, slots=True)
class _Undoable:
    """A label saved through this sink: undoing it restores `prior` (None: nothing before)."""

    case_id: str  # the desktop's case id
    store_case: str
    label_id: int
    prior: int | None


class StoreLabelSink:
    """A `LabelSink` backed by a `ReviewStore`. Blocking and thread-safe (calls are serialised).

    Parameters
    ----------
    store
        An open store; the sink closes it in `close()`.
    """

    def __init__(self, store: ReviewStore) -> None:
        self.store = store
        self._lock = threading.RLock()
        self._store_case: dict[str, str] = {}  # desktop case id -> store case id (this session)
        self._predictions: dict[tuple[object, ...], int] = {}
        self._undo: list[_Undoable] = []

    @classmethod
    def open(cls, location: str | os.PathLike[str] | None = None) -> StoreLabelSink:
        """Open (or create) the store in `location` (default: $SOS_DATA_DIR or the user's data
        folder). Raises the store's typed errors (`NotAStore`, `StoreTooNew`, ...)."""
        return cls(ReviewStore.open(location))

    @property
    def location(self) -> Path:
        """The store folder."""
        return self.store.folder

    def close(self) -> None:
        with self._lock:
            self.store.close()

    # --- saving -------------------------------------------------------------------------------
    def save(self, decision: ReviewDecision) -> SavedLabel:
        """Ingest the reviewed image, store the prediction it answers and append the label.

        Raises
        ------
        ParameterError
            The decision carries no image.
        LabelRejected, BurnedInAnnotation, StoreBusy, StoreError
            From the store; nothing was written for the label then.
        """
        if decision.image is None:
            raise ParameterError("The label cannot be saved without the image it was made on.")
        with self._lock:
            case = self._ensure_case(decision)
            prediction_id = self._prediction_id(case.case_id, decision)
            head = self.store.current_label(case.case_id)
            label = self.store.add_label(
                case.case_id,
                stage=decision.stage,
                box=_inside(decision.box, case.shape),
                reviewer=decision.reviewer,
                box_source=decision.box_source,
                reason=decision.reason or "confirmed",
                note=decision.note,
                prediction_id=prediction_id,
                model_version=decision.model_version,
                supersedes=head.id if head is not None else None,
            )
            self._store_case[decision.case_id] = case.case_id
            prior = head.id if head is not None else None
            self._undo.append(_Undoable(decision.case_id, case.case_id, label.id, prior))
        logger.info("label %d saved for %s (%s)", label.id, decision.case_id, decision.decision)
        return saved_label(decision.case_id, label, decision)

    def _ensure_case(self, d: ReviewDecision) -> CaseRecord:
        image = d.image
        assert image is not None
        flat = image.study.kind == "image"
        confirmed_by = d.reviewer if d.no_burned_in else None
        result = self.store.ingest(
            image.study,
            image=None if flat else image.pixels,
            pixel_spacing=None if flat else image.spacing,
            burn_in_confirmed_by=confirmed_by,
        )
        case = result.case
        if confirmed_by is not None and case.burn_in == "hold":
            case = self.store.confirm_no_burned_in(case.case_id, confirmed_by)
        return case

    def _prediction_id(self, store_case: str, d: ReviewDecision) -> int | None:
        """The stored prediction the label answers: only one made on this very image."""
        p, image = d.prediction, d.image
        if p is None or image is None or p.slice_index != image.slice_index:
            return None
        if d.model_version not in (None, p.model_version):
            return None
        key = (store_case, p.model_version, p.stage, tuple(p.probabilities))
        if key not in self._predictions:
            self._predictions[key] = self.store.add_prediction(store_case, p).id
        return self._predictions[key]

    # --- undo ---------------------------------------------------------------------------------
    def undo_last(self) -> SavedLabel | None:
        """Withdraw the newest label saved through this sink, appending only (RG-1).

        A correction is superseded by a row restoring the label before it; a case's first label
        is retracted, leaving the case unlabelled.

        Raises
        ------
        LabelRejected
            It was corrected or withdrawn since (e.g. in another window), or it is the label of a
            locked validation case (that set only grows).
        """
        with self._lock:
            if not self._undo:
                return None
            entry = self._undo[-1]
            labels = {lab.id: lab for lab in self.store.labels_for_case(entry.store_case)}
            undone = labels[entry.label_id]
            if entry.prior is None:
                self.store.retract_label(undone.id, reviewer=undone.reviewer, note=UNDO_NOTE)
                self._undo.pop()
                logger.info("label %d withdrawn; its case is unlabelled again", undone.id)
                return saved_label(entry.case_id, undone)
            before = labels[entry.prior]
            restored = self.store.add_label(
                entry.store_case,
                stage=before.stage,
                box=before.box,
                reviewer=undone.reviewer,
                box_source=before.box_source,
                reason=before.reason,
                note=before.note,
                prediction_id=before.prediction_id,
                model_version=before.model_version,
                supersedes=undone.id,
            )
            self._undo.pop()
            # the restored row now stands for the earlier label: undoing that one supersedes it
            self._undo = [
                dataclasses.replace(u, label_id=restored.id) if u.label_id == entry.prior else u
                for u in self._undo
            ]
        logger.info("label %d withdrawn by label %d", undone.id, restored.id)
        return saved_label(entry.case_id, undone)

    # --- reading ------------------------------------------------------------------------------
    def latest(self, case_id: str) -> SavedLabel | None:
        with self._lock:
            store_case = self._store_case.get(case_id)
            label = self.store.current_label(store_case) if store_case else None
        return saved_label(case_id, label) if label is not None else None

    def lookup(self, case_id: str, image: CaseImage | None) -> CaseReviewState:
        """Find the case by its pixels (a label from an earlier session shows up too) and say
        whether it needs a burn-in confirmation."""
        reason = burn_in_reason(image) if image is not None else None
        with self._lock:
            store_case = self._store_case.get(case_id)
            if store_case is None and image is not None:
                digest = content_hash(_as_stored(image))
                found = next((c for c in self.store.cases() if c.content_hash == digest), None)
                if found is not None:
                    store_case = self._store_case[case_id] = found.case_id
            confirmed = False
            label = None
            if store_case is not None:
                confirmed = self.store.case(store_case).burn_in in ("confirmed", "redacted")
                label = self.store.current_label(store_case)
        latest = saved_label(case_id, label) if label is not None else None
        return CaseReviewState(case_id, latest, reason, confirmed)


def burn_in_reason(image: CaseImage) -> str | None:
    """Why the store would hold this image until an expert confirms it shows no burned-in
    identifiers (header-less raster, secondary capture, BurnedInAnnotation=YES), or None."""
    flat = image.study.kind == "image"
    try:
        prepared = prepare_case(
            image.study,
            image=None if flat else image.pixels,
            pixel_spacing=None if flat else image.spacing,
        )
    except BurnedInAnnotation:
        return "the file says the image carries burned-in annotations"
    except ParameterError:
        return None  # the save reports it in words
    return prepared.hold_reason if prepared.burn_in == "hold" else None


def _as_stored(image: CaseImage) -> object:
    import numpy as np

    pixels = image.study.pixels if image.study.kind == "image" else image.pixels
    if pixels.dtype.kind == "b":
        pixels = pixels.astype(np.uint8)
    return np.ascontiguousarray(pixels)


def _inside(
    box: tuple[float, float, float, float] | None, shape: tuple[int, int]
) -> tuple[float, float, float, float]:
    """The crop box clipped to the image (the ROI can be dragged past its edge)."""
    if box is None:
        raise LabelRejected(
            "Draw the SOS box on the image before saving; the teacher trains on it."
        )
    rows, cols = shape
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = max(0.0, min(x0, cols)), max(0.0, min(x1, cols))
    y0, y1 = max(0.0, min(y0, rows)), max(0.0, min(y1, rows))
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 - x0 < 1 or y1 - y0 < 1:
        raise LabelRejected("The SOS box lies outside the image; draw it over the synchondrosis.")
    return (x0, y0, x1, y1)


def saved_label(case_id: str, label: Label, decision: ReviewDecision | None = None) -> SavedLabel:
    """A store `Label` as the panel shows it (under the desktop's case id)."""
    if label.reason == "confirmed":
        kind = "confirm" if label.model_version else "label"
    else:
        kind = "correct"
    base = decision or ReviewDecision(case_id=case_id, stage=label.stage, reviewer=label.reviewer,
                                      decision=kind)  # fmt: skip
    shown = dataclasses.replace(
        base,
        case_id=case_id,
        stage=label.stage,
        reviewer=label.reviewer,
        box=label.box,
        reason=None if label.reason == "confirmed" else label.reason,
        note=label.note,
        model_version=label.model_version,
        box_source=label.box_source,
    )
    created = datetime.fromisoformat(label.created_at.replace("Z", "+00:00")).astimezone(UTC)
    supersedes = str(label.supersedes) if label.supersedes is not None else None
    return SavedLabel(str(label.id), shown, created, supersedes)


__all__ = ["UNDO_NOTE", "StoreLabelSink", "burn_in_reason", "saved_label"]
