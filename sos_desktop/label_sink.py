"""Where the review panel's labels go: the `LabelSink` seam and its in-memory implementation.

The review store (`sos_core.review`) will sit behind this protocol; until it lands,
`InMemoryLabelSink` keeps the same append-only semantics: a correction is a new row that
supersedes the previous one, and undo appends a retraction instead of deleting (DESIGN.md).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

logger = logging.getLogger(__name__)

Decision = Literal["confirm", "correct", "label"]
ReasonCode = Literal["ambiguous", "artefact", "wrong_anatomy", "model_error"]
REASONS: tuple[tuple[ReasonCode, str], ...] = (
    ("ambiguous", "Ambiguous image"),
    ("artefact", "Artefact"),
    ("wrong_anatomy", "Wrong anatomy"),
    ("model_error", "Model error"),
)


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """What the expert decided for one case.

    stage: the expert's stage index (scheme order).
    decision: "confirm" (agrees with the prediction), "correct" (differs), or "label" (no
        prediction existed).
    box: the expert's SOS crop box [x0, y0, x1, y1] in the displayed image's pixels (for a volume:
        the sagittal slice `slice_index`); None when the expert drew none.
    reason: why a prediction was corrected; None for a confirmation.
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


@dataclass(frozen=True, slots=True)
class SavedLabel:
    """A decision as stored: its id, UTC time, and the label it supersedes (if any)."""

    label_id: str
    decision: ReviewDecision
    created_utc: datetime
    supersedes: str | None = None


@runtime_checkable
class LabelSink(Protocol):
    """Append-only label storage as the review panel needs it (GUI thread; must be quick)."""

    def save(self, decision: ReviewDecision) -> SavedLabel:
        """Store `decision`; returns only once it is stored (DB-2: acknowledged after commit)."""
        ...

    def undo_last(self) -> SavedLabel | None:
        """Retract the most recent label not yet retracted; returns it, or None."""
        ...

    def latest(self, case_id: str) -> SavedLabel | None:
        """The label in force for `case_id`, or None."""
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

    def save(self, decision: ReviewDecision) -> SavedLabel:
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
        retracted = self._retracted()
        for row in reversed(self.rows):
            if isinstance(row, SavedLabel) and row.label_id not in retracted:
                self.rows.append(_Retraction(row.label_id, datetime.now(UTC)))
                logger.info("label %s retracted", row.label_id)
                return row
        return None

    def latest(self, case_id: str) -> SavedLabel | None:
        retracted = self._retracted()
        for row in reversed(self.rows):
            if (
                isinstance(row, SavedLabel)
                and row.decision.case_id == case_id
                and row.label_id not in retracted
            ):
                return row
        return None

    def labels(self) -> list[SavedLabel]:
        """Every label row ever saved, retracted ones included, in save order."""
        return [r for r in self.rows if isinstance(r, SavedLabel)]

    def _retracted(self) -> set[str]:
        return {r.label_id for r in self.rows if isinstance(r, _Retraction)}


__all__ = [
    "REASONS",
    "InMemoryLabelSink",
    "LabelSink",
    "ReasonCode",
    "ReviewDecision",
    "SavedLabel",
]
