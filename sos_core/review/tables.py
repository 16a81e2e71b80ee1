"""Row-level operations of the review store; each runs inside the caller's transaction.

`ReviewStore` owns the connection and the transactions; these functions only read and write
rows, validate inputs and append the matching audit entries, so a row and its audit entry always
commit together (DB-2).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sos_core.errors import CaseNotFound, LabelRejected, ParameterError
from sos_core.review import audit
from sos_core.review.records import (
    Box,
    CaseRecord,
    Label,
    PredictionRecord,
    Retraction,
)
from sos_core.review.schema import BOX_SOURCES, REASON_CODES

if TYPE_CHECKING:
    from sos_core.inference.prediction import Prediction
    from sos_core.review.ingest import PreparedCase

logger = logging.getLogger(__name__)

MAX_NOTE_CHARS = 2000
MAX_ID_CHARS = 120

_CASE_SELECT = (
    "SELECT case_id, content_hash, blob, modality, rows, cols, dtype, pixel_spacing, source_kind,"
    " source_label, attributes, patient_sex, patient_age_months, deid, burn_in, hold_reason,"
    " created_at, EXISTS (SELECT 1 FROM burn_in_confirmations b WHERE b.case_id = cases.case_id)"
    " FROM cases"
)
_LABEL_SELECT = (
    "SELECT id, case_id, stage, x0, y0, x1, y1, box_source, reason, note, reviewer, created_at,"
    " prediction_id, model_version, supersedes FROM labels"
)


def _json(value: Any) -> str:
    return audit.canonical_json(value).decode("ascii")


# --- cases ------------------------------------------------------------------------------------


def _case(row: sqlite3.Row | tuple[Any, ...]) -> CaseRecord:
    spacing = json.loads(row[7]) if row[7] else None
    burn_in = row[14]
    if burn_in == "hold" and row[17]:
        burn_in = "confirmed"
    return CaseRecord(
        case_id=row[0],
        content_hash=row[1],
        blob=row[2],
        modality=row[3],
        shape=(int(row[4]), int(row[5])),
        dtype=row[6],
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        source_kind=row[8],
        source_label=row[9],
        attributes=json.loads(row[10]),
        patient_sex=row[11],
        patient_age_months=row[12],
        deid=json.loads(row[13]),
        burn_in=burn_in,
        hold_reason=row[15],
        created_at=row[16],
    )


def case_by_hash(conn: sqlite3.Connection, content_hash: str) -> CaseRecord | None:
    row = conn.execute(_CASE_SELECT + " WHERE content_hash = ?", (content_hash,)).fetchone()
    return _case(row) if row else None


def case_by_id(conn: sqlite3.Connection, case_id: str) -> CaseRecord:
    row = conn.execute(_CASE_SELECT + " WHERE case_id = ?", (str(case_id),)).fetchone()
    if row is None:
        raise CaseNotFound("No case with that id exists in the review store.")
    return _case(row)


def all_cases(conn: sqlite3.Connection) -> list[CaseRecord]:
    return [_case(r) for r in conn.execute(_CASE_SELECT + " ORDER BY created_at, case_id")]


def insert_case(
    conn: sqlite3.Connection, case: PreparedCase, *, case_id: str, source_key: str | None, blob: str
) -> None:
    """Insert a de-identified case and its audit entry (and the burn-in confirmation, if any)."""
    now = audit.utc_now()
    conn.execute(
        "INSERT INTO cases (case_id, content_hash, blob, modality, rows, cols, dtype,"
        " pixel_spacing, source_kind, source_key, source_label, attributes, patient_sex,"
        " patient_age_months, deid, burn_in, hold_reason, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            case_id,
            case.content_hash,
            blob,
            case.modality,
            int(case.pixels.shape[0]),
            int(case.pixels.shape[1]),
            case.pixels.dtype.str,
            _json(list(case.pixel_spacing)) if case.pixel_spacing else None,
            case.source_kind,
            source_key,
            case.source_label,
            _json(case.attributes),
            case.patient_sex,
            case.patient_age_months,
            _json(case.deid),
            case.burn_in,
            case.hold_reason,
            now,
        ),
    )
    audit.append(
        conn,
        actor=case.confirmed_by or "ingest",
        action="case.add",
        subject=f"case:{case_id}",
        details={
            "content_hash": case.content_hash,
            "blob": blob,
            "source_kind": case.source_kind,
            "burn_in": case.burn_in,
            "deid_options": case.deid.get("options", []),
        },
    )
    if case.confirmed_by is not None and case.burn_in in ("confirmed", "redacted"):
        _insert_confirmation(conn, case_id, case.confirmed_by, redacted=case.burn_in == "redacted")


def _insert_confirmation(
    conn: sqlite3.Connection, case_id: str, reviewer: str, *, redacted: bool
) -> None:
    conn.execute(
        "INSERT INTO burn_in_confirmations (case_id, reviewer, created_at) VALUES (?, ?, ?)",
        (case_id, reviewer, audit.utc_now()),
    )
    audit.append(
        conn,
        actor=reviewer,
        action="case.burn_in_confirmed",
        subject=f"case:{case_id}",
        details={"statement": "no burned-in identifiers", "redacted": redacted},
    )


def confirm_burn_in(conn: sqlite3.Connection, case_id: str, reviewer: str) -> CaseRecord:
    """Record "no burned-in identifiers" for a held case (DI-3)."""
    who = identifier(reviewer, "A confirmation needs the reviewer's id.")
    case_by_id(conn, case_id)
    _insert_confirmation(conn, case_id, who, redacted=False)
    return case_by_id(conn, case_id)


# --- predictions ------------------------------------------------------------------------------


def _box(value: Any, shape: tuple[int, int] | None, message: str) -> Box:
    try:
        x0, y0, x1, y1 = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise LabelRejected(message) from exc
    ok = all(math.isfinite(v) for v in (x0, y0, x1, y1)) and x0 < x1 and y0 < y1
    if ok and shape is not None:
        rows, cols = shape
        ok = x0 >= 0 and y0 >= 0 and x1 <= cols and y1 <= rows
    if not ok:
        raise LabelRejected(message)
    return (x0, y0, x1, y1)


def insert_prediction(
    conn: sqlite3.Connection, case_id: str, prediction: Prediction
) -> PredictionRecord:
    case_by_id(conn, case_id)
    version = str(prediction.model_version or "").strip()
    probabilities = [float(p) for p in prediction.probabilities]
    stage = prediction.stage
    if (
        not version
        or isinstance(stage, bool)
        or not isinstance(stage, int)
        or not 0 <= stage < max(1, len(probabilities))
        or not all(math.isfinite(p) and 0 <= p <= 1 for p in probabilities)
    ):
        raise ParameterError(
            "A prediction needs a model version, a stage index and one probability per stage."
        )
    box = None
    if prediction.box is not None:
        box = _box(prediction.box, None, "The prediction's box must be [x0, y0, x1, y1].")
    now = audit.utc_now()
    cur = conn.execute(
        "INSERT INTO predictions (case_id, model_version, stage, probabilities, flags, box,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            case_id,
            version,
            stage,
            _json(probabilities),
            _json(list(prediction.flags)),
            _json(list(box)) if box else None,
            now,
        ),
    )
    pid = int(cur.lastrowid or 0)
    audit.append(
        conn,
        actor=f"model:{version}",
        action="prediction.add",
        subject=f"prediction:{pid}",
        details={"case_id": case_id, "model_version": version, "stage": stage},
    )
    return PredictionRecord(
        pid, case_id, version, stage, tuple(probabilities), tuple(prediction.flags), box, now
    )


def predictions_for_case(conn: sqlite3.Connection, case_id: str) -> list[PredictionRecord]:
    rows = conn.execute(
        "SELECT id, case_id, model_version, stage, probabilities, flags, box, created_at"
        " FROM predictions WHERE case_id = ? ORDER BY id",
        (case_id,),
    ).fetchall()
    return [
        PredictionRecord(
            r[0],
            r[1],
            r[2],
            r[3],
            tuple(json.loads(r[4])),
            tuple(json.loads(r[5])),
            tuple(json.loads(r[6])) if r[6] else None,  # type: ignore[arg-type]
            r[7],
        )
        for r in rows
    ]


# --- labels -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelDraft:
    """A label as the caller gave it, before validation."""

    case_id: str
    stage: Any
    box: Sequence[Any]
    reviewer: Any
    box_source: Any
    reason: Any
    note: Any
    prediction_id: int | None
    model_version: str | None
    supersedes: int | None
    # False only on a store opened at a schema older than `RETRACTIONS_SINCE` (migration tests)
    retractions: bool = True


def identifier(value: Any, message: str) -> str:
    """A stripped, printable id of 1 to 120 characters (reviewer, run), else `LabelRejected`."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_ID_CHARS or not text.isprintable():
        raise LabelRejected(message)
    return text


def _label(row: tuple[Any, ...]) -> Label:
    return Label(
        id=row[0],
        case_id=row[1],
        stage=row[2],
        box=(row[3], row[4], row[5], row[6]),
        box_source=row[7],
        reason=row[8],
        note=row[9],
        reviewer=row[10],
        created_at=row[11],
        prediction_id=row[12],
        model_version=row[13],
        supersedes=row[14],
    )


def _check_label(conn: sqlite3.Connection, d: LabelDraft, n_stages: int) -> tuple[Any, ...]:
    """Validate a draft; returns the column values (without id and time)."""
    reviewer = identifier(d.reviewer, "A label needs the reviewer's id (1 to 120 characters).")
    case = case_by_id(conn, d.case_id)
    if isinstance(d.stage, bool) or not isinstance(d.stage, int) or not 0 <= d.stage < n_stages:
        raise LabelRejected(f"The stage must be a whole number from 0 to {n_stages - 1}.")
    box = _box(
        d.box,
        case.shape,
        "The SOS box must be [x0, y0, x1, y1] inside the image, with x0 < x1 and y0 < y1.",
    )
    if d.box_source not in BOX_SOURCES:
        raise LabelRejected("The box source must be 'expert' (drawn) or 'suggested' (accepted).")
    if d.reason not in REASON_CODES:
        raise LabelRejected("The reason must be one of: " + ", ".join(REASON_CODES) + ".")
    if not isinstance(d.note, str) or len(d.note) > MAX_NOTE_CHARS:
        raise LabelRejected(f"The note must be text of at most {MAX_NOTE_CHARS} characters.")
    version = _answered_version(conn, d)
    if d.supersedes is not None:
        old = conn.execute(
            "SELECT case_id, EXISTS (SELECT 1 FROM labels s WHERE s.supersedes = labels.id)"
            " FROM labels WHERE id = ?",
            (int(d.supersedes),),
        ).fetchone()
        if old is None or old[0] != d.case_id:
            raise LabelRejected("A correction must supersede a label of the same case.")
        if old[1]:
            raise LabelRejected(
                "That label has already been corrected; correct the case's newest label instead."
            )
        if d.retractions and _retracted(conn, int(d.supersedes)):
            raise LabelRejected(
                "That label was withdrawn; add a new label for the case instead of correcting it."
            )
    return (d.case_id, d.stage, *box, d.box_source, d.reason, d.note, reviewer, version)


def _answered_version(conn: sqlite3.Connection, d: LabelDraft) -> str | None:
    if d.prediction_id is None:
        return d.model_version
    row = conn.execute(
        "SELECT case_id, model_version FROM predictions WHERE id = ?", (int(d.prediction_id),)
    ).fetchone()
    if row is None:
        raise CaseNotFound("No prediction with that id exists in the review store.")
    if row[0] != d.case_id or (d.model_version not in (None, row[1])):
        raise LabelRejected("The prediction this label answers belongs to another case or model.")
    return row[1]


def insert_label(conn: sqlite3.Connection, d: LabelDraft, *, n_stages: int) -> Label:
    values = _check_label(conn, d, n_stages)
    now = audit.utc_now()
    try:
        cur = conn.execute(
            "INSERT INTO labels (case_id, stage, x0, y0, x1, y1, box_source, reason, note,"
            " reviewer, model_version, created_at, prediction_id, supersedes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, now, d.prediction_id, d.supersedes),
        )
    except sqlite3.IntegrityError as exc:
        raise LabelRejected("The label was refused by the store's consistency rules.") from exc
    label_id = int(cur.lastrowid or 0)
    audit.append(
        conn,
        actor=values[9],
        action="label.add",
        subject=f"label:{label_id}",
        details={
            "case_id": d.case_id,
            "stage": d.stage,
            "reason": d.reason,
            "box_source": d.box_source,
            "prediction_id": d.prediction_id,
            "model_version": values[10],
            "supersedes": d.supersedes,
        },
    )
    row = conn.execute(_LABEL_SELECT + " WHERE id = ?", (label_id,)).fetchone()
    return _label(row)


def labels_for_case(conn: sqlite3.Connection, case_id: str) -> list[Label]:
    case_by_id(conn, case_id)
    rows = conn.execute(_LABEL_SELECT + " WHERE case_id = ? ORDER BY id", (case_id,))
    return [_label(r) for r in rows]


def current_label(
    conn: sqlite3.Connection, case_id: str, *, retractions: bool = True
) -> Label | None:
    """The case's newest label, None if it has none or that label was withdrawn."""
    case_by_id(conn, case_id)
    row = conn.execute(
        _LABEL_SELECT + " WHERE case_id = ? ORDER BY id DESC LIMIT 1", (case_id,)
    ).fetchone()
    if row is None or (retractions and _retracted(conn, int(row[0]))):
        return None
    return _label(row)


def _retracted(conn: sqlite3.Connection, label_id: int) -> bool:
    found = conn.execute("SELECT 1 FROM label_retractions WHERE label_id = ?", (label_id,))
    return found.fetchone() is not None


_RETRACTION_SELECT = (
    "SELECT id, label_id, case_id, reviewer, note, created_at FROM label_retractions"
)


def insert_retraction(
    conn: sqlite3.Connection,
    label_id: int,
    *,
    reviewer: Any,
    note: Any,
    locked: frozenset[str],
) -> Retraction:
    """Withdraw the case's label in force with a retraction row and its audit entry."""
    who = identifier(reviewer, "A withdrawal needs the reviewer's id (1 to 120 characters).")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise LabelRejected(f"The note must be text of at most {MAX_NOTE_CHARS} characters.")
    row = conn.execute("SELECT case_id FROM labels WHERE id = ?", (int(label_id),)).fetchone()
    if row is None:
        raise CaseNotFound("No label with that id exists in the review store.")
    case_id = str(row[0])
    if _retracted(conn, int(label_id)):
        raise LabelRejected("That label has already been withdrawn.")
    newer = conn.execute(
        "SELECT 1 FROM labels WHERE case_id = ? AND id > ? LIMIT 1", (case_id, int(label_id))
    ).fetchone()
    if newer is not None:
        raise LabelRejected(
            "That label is no longer in force (a newer label of the case exists); only the "
            "case's newest label can be withdrawn."
        )
    if case_id in locked:
        raise LabelRejected(
            "The case belongs to the locked validation set, which only grows; correct its label "
            "instead of withdrawing it."
        )
    now = audit.utc_now()
    try:
        cur = conn.execute(
            "INSERT INTO label_retractions (label_id, case_id, reviewer, note, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (int(label_id), case_id, who, note, now),
        )
    except sqlite3.IntegrityError as exc:
        raise LabelRejected("The withdrawal was refused by the store's consistency rules.") from exc
    rid = int(cur.lastrowid or 0)
    audit.append(
        conn,
        actor=who,
        action="label.retract",
        subject=f"label:{int(label_id)}",
        details={"case_id": case_id, "retraction_id": rid},
    )
    return Retraction(rid, int(label_id), case_id, who, note, now)


def retractions_for_case(conn: sqlite3.Connection, case_id: str) -> list[Retraction]:
    case_by_id(conn, case_id)
    rows = conn.execute(_RETRACTION_SELECT + " WHERE case_id = ? ORDER BY id", (case_id,))
    return [Retraction(*r) for r in rows]


def chain(conn: sqlite3.Connection, label_id: int) -> list[Label]:
    out: list[Label] = []
    seen: set[int] = set()
    next_id: int | None = int(label_id)
    while next_id is not None:
        if next_id in seen:  # impossible by schema (supersedes < id); guard anyway
            raise LabelRejected("The label history is inconsistent (a correction loop).")
        seen.add(next_id)
        row = conn.execute(_LABEL_SELECT + " WHERE id = ?", (next_id,)).fetchone()
        if row is None:
            raise CaseNotFound("No label with that id exists in the review store.")
        out.append(_label(row))
        next_id = out[-1].supersedes
    return out
