"""Where the review panel's labels go: the `LabelSink` seam, its records, and an in-memory sink.

A sink is plain, blocking, thread-safe Python; the app calls it only from a worker thread
(`sos_desktop.label_service.LabelService`), never from the GUI thread. `StoreLabelSink`
(`sos_desktop.store_sink`) writes to the review store; `InMemoryLabelSink` keeps the same
append-only semantics for one session (a correction is a new row that supersedes the previous
one, and undo appends a retraction instead of deleting; DESIGN.md).
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from sos_core.imaging.study import Study
    from sos_core.inference.prediction import Prediction

logger = logging.getLogger(__name__)

Decision = Literal["confirm", "correct", "label"]
ReasonCode = Literal["ambiguous", "artefact", "wrong_anatomy", "model_error"]
BoxSource = Literal["expert", "suggested"]
REASONS: tuple[tuple[ReasonCode, str], ...] = (
    ("ambiguous", "Ambiguous image"),
    ("artefact", "Artefact"),
    ("wrong_anatomy", "Wrong anatomy"),
    ("model_error", "Model error"),
)


@dataclass(frozen=True, slots=True)
class CaseImage:
    """The 2-D image the expert reviewed, as the store must keep it.

    study: the opened study (its header is re-read for de-identification, never stored).
    pixels: the displayed 2-D image (rows, cols) in modality units: the study itself for a 2-D
        image, the sagittal slice / frame `slice_index` for a volume / frame stack.
    spacing: mm per pixel (row, col) of `pixels`, None when unknown.
    """

    study: Study
    pixels: np.ndarray
    spacing: tuple[float, float] | None = None
    slice_index: int | None = None


@dataclass(frozen=True, slots=True)
class ReviewInputs:
    """What the viewer holds when a label is saved (captured on the GUI thread).

    box: the crop box in image pixels; suggested: the model's box it started from (None: none).
    image: the displayed image for the store; prediction: the prediction shown (None: none).
    """

    box: tuple[float, float, float, float] | None
    slice_index: int | None
    image: CaseImage | None = None
    prediction: Prediction | None = None
    suggested: tuple[float, float, float, float] | None = None

    @property
    def box_source(self) -> BoxSource:
        """The box's origin: "suggested" if the expert left the model's box as it was."""
        if self.box is None or self.suggested is None:
            return "expert"
        same = all(abs(a - b) < 0.5 for a, b in zip(self.box, self.suggested, strict=True))
        return "suggested" if same else "expert"


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """What the expert decided for one case.

    stage: the expert's stage index (scheme order).
    decision: "confirm" (agrees with the prediction), "correct" (differs), or "label" (no
        prediction existed).
    box: the expert's SOS crop box [x0, y0, x1, y1] in the displayed image's pixels (for a volume:
        the sagittal slice `slice_index`); None when the expert drew none.
    box_source: "suggested" when the expert left the model's suggested box as it was.
    reason: why a prediction was corrected; None for a confirmation.
    image / prediction: what the review store ingests and links the label to (None for sinks
        that keep no images).
    no_burned_in: the reviewer confirmed the image shows no burned-in identifiers (DI-3).
    """

    case_id: str
    stage: int
    reviewer: str
    decision: Decision
    box: tuple[float, float, float, float] | None = None
    slice_index: int | None = None
    reason: ReasonCode | None = None
    note: str = ""
    predicted_stage: int | None = None
    model_version: str | None = None
    box_source: BoxSource = "expert"
    image: CaseImage | None = field(default=None, compare=False, repr=False)
    prediction: Prediction | None = field(default=None, compare=False, repr=False)
    no_burned_in: bool = False


@dataclass(frozen=True, slots=True)
class SavedLabel:
    """A decision as stored: its id, UTC time, and the label it supersedes (if any)."""

    label_id: str
    decision: ReviewDecision
    created_utc: datetime
    supersedes: str | None = None


@dataclass(frozen=True, slots=True)
class CaseReviewState:
    """What a sink knows about a case when it is opened.

    latest: the label in force, or None.
    burn_in_reason: why the image may show burned-in identifiers and needs an expert's
        confirmation before it can be used for training (DI-3); None when it needs none.
    burn_in_confirmed: an expert already confirmed it.
    """

    case_id: str
    latest: SavedLabel | None = None
    burn_in_reason: str | None = None
    burn_in_confirmed: bool = False

    @property
    def needs_burn_in_confirmation(self) -> bool:
        return self.burn_in_reason is not None and not self.burn_in_confirmed


@runtime_checkable
class LabelSink(Protocol):
    """Append-only label storage. Blocking and thread-safe: call from a worker thread only."""

    def save(self, decision: ReviewDecision) -> SavedLabel:
        """Store `decision`; returns only once it is stored (DB-2: acknowledged after commit)."""
        ...

    def undo_last(self) -> SavedLabel | None:
        """Withdraw the most recent label saved through this sink; returns it, or None."""
        ...

    def latest(self, case_id: str) -> SavedLabel | None:
        """The label in force for `case_id`, or None."""
        ...

    def lookup(self, case_id: str, image: CaseImage | None) -> CaseReviewState:
        """The label in force and the burn-in state of a case that is being opened."""
        ...

    def close(self) -> None:
        """Release the storage (the sink is not used afterwards)."""
        ...


@dataclass(frozen=True, slots=True)
class _Retraction:
    label_id: str
    created_utc: datetime


@dataclass
class InMemoryLabelSink:
    """A `LabelSink` in a list: append-only rows of labels and retractions (session only)."""

    rows: list[SavedLabel | _Retraction] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def save(self, decision: ReviewDecision) -> SavedLabel:
        with self._lock:
            previous = self.latest(decision.case_id)
            saved = SavedLabel(
                label_id=f"L{next(self._ids)}",
                decision=decision,
                created_utc=datetime.now(UTC),
                supersedes=previous.label_id if previous else None,
            )
            self.rows.append(saved)
        logger.info(
            "label %s saved for %s (%s)", saved.label_id, decision.case_id, decision.decision
        )
        return saved

    def undo_last(self) -> SavedLabel | None:
        with self._lock:
            retracted = self._retracted()
            for row in reversed(self.rows):
                if isinstance(row, SavedLabel) and row.label_id not in retracted:
                    self.rows.append(_Retraction(row.label_id, datetime.now(UTC)))
                    logger.info("label %s retracted", row.label_id)
                    return row
        return None

    def latest(self, case_id: str) -> SavedLabel | None:
        with self._lock:
            retracted = self._retracted()
            for row in reversed(self.rows):
                if (
                    isinstance(row, SavedLabel)
                    and row.decision.case_id == case_id
                    and row.label_id not in retracted
                ):
                    return row
        return None

    def lookup(self, case_id: str, image: CaseImage | None) -> CaseReviewState:
        """Session labels only; images are not kept, so nothing is held for burn-in review."""
        return CaseReviewState(case_id, self.latest(case_id))

    def close(self) -> None:
        """Nothing to release."""

    def labels(self) -> list[SavedLabel]:
        """Every label row ever saved, retracted ones included, in save order."""
        with self._lock:
            return [r for r in self.rows if isinstance(r, SavedLabel)]

    def _retracted(self) -> set[str]:
        return {r.label_id for r in self.rows if isinstance(r, _Retraction)}


__all__ = [
    "REASONS",
    "BoxSource",
    "CaseImage",
    "CaseReviewState",
    "InMemoryLabelSink",
    "LabelSink",
    "ReasonCode",
    "ReviewDecision",
    "ReviewInputs",
    "SavedLabel",
]
