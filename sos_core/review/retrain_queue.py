"""The retraining queue: labelled cases whose label in force the active model has not learned.

A label is *learned* once a promoted model trained on it (`mark_used`, a `training_use` row)
and that model has not been rolled back since (`release_run`, a `training_release` row for the
same run). A rejected candidate marks nothing: the active model never learned its labels, so
they stay queued for the next run. Left out: cases without a label in force (never labelled, or
the label was withdrawn), cases of the locked validation set (never trained on, RG-4), and
cases held for a burn-in confirmation (DI-3, counted in `held_cases`).

Runs inside the caller's transaction, like `tables`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter

from sos_core.errors import CaseNotFound
from sos_core.review import audit
from sos_core.review.records import QueueItem, RetrainQueue
from sos_core.review.tables import identifier

logger = logging.getLogger(__name__)

# A label the active model learned: used by a promoted run that was not rolled back since.
LEARNED = (
    "EXISTS (SELECT 1 FROM training_use t WHERE t.label_id = l.id AND NOT EXISTS"
    " (SELECT 1 FROM training_release r WHERE r.label_id = t.label_id AND r.run_id = t.run_id))"
)


def queue(conn: sqlite3.Connection, locked: frozenset[str] = frozenset()) -> RetrainQueue:
    """Cases whose label in force the active model has not learned; `locked`: case ids held out."""
    rows = conn.execute(
        "SELECT l.id, l.case_id, l.stage, l.x0, l.y0, l.x1, l.y1, l.box_source, l.reviewer,"
        " c.modality, c.rows, c.cols, c.pixel_spacing, c.blob,"
        " c.burn_in = 'hold' AND NOT EXISTS"
        "  (SELECT 1 FROM burn_in_confirmations b WHERE b.case_id = c.case_id)"
        " FROM labels l JOIN cases c ON c.case_id = l.case_id"
        " WHERE l.id = (SELECT max(id) FROM labels m WHERE m.case_id = l.case_id)"
        " AND NOT EXISTS (SELECT 1 FROM label_retractions x WHERE x.label_id = l.id)"
        f" AND NOT {LEARNED}"
        " ORDER BY l.id"
    ).fetchall()
    items: list[QueueItem] = []
    held = n_locked = 0
    for r in rows:
        if r[1] in locked:
            n_locked += 1
            continue
        if r[14]:
            held += 1
            continue
        spacing = json.loads(r[12]) if r[12] else None
        items.append(
            QueueItem(
                case_id=r[1],
                label_id=r[0],
                stage=r[2],
                box=(r[3], r[4], r[5], r[6]),
                box_source=r[7],
                reviewer=r[8],
                modality=r[9],
                shape=(r[10], r[11]),
                pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
                blob=r[13],
            )
        )
    per_stage = dict(sorted(Counter(i.stage for i in items).items()))
    per_reviewer = dict(sorted(Counter(i.reviewer for i in items).items()))
    return RetrainQueue(tuple(items), per_stage, per_reviewer, held, n_locked)


def mark_used(conn: sqlite3.Connection, label_ids: list[int], run_id: str, actor: str) -> int:
    run = identifier(run_id, "A training run needs an id (1 to 120 characters).")
    before = conn.total_changes
    now = audit.utc_now()
    try:
        conn.executemany(
            "INSERT OR IGNORE INTO training_use (label_id, run_id, used_at) VALUES (?, ?, ?)",
            [(i, run, now) for i in label_ids],
        )
    except sqlite3.IntegrityError as exc:
        raise CaseNotFound("A label given to the training run does not exist.") from exc
    added = conn.total_changes - before
    audit.append(
        conn,
        actor=actor,
        action="training.use",
        subject=f"run:{run}",
        details={"label_ids": sorted(label_ids), "added": added},
    )
    return added


def release_run(conn: sqlite3.Connection, run_id: str, actor: str, reason: str) -> list[int]:
    """Record that the model of `run_id` is no longer active: its labels count as not learned.

    Returns the label ids released (those the run had marked used and not released before).
    """
    run = identifier(run_id, "A training run needs an id (1 to 120 characters).")
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT label_id FROM training_use t WHERE run_id = ? AND NOT EXISTS"
            " (SELECT 1 FROM training_release r WHERE r.label_id = t.label_id AND r.run_id = ?)"
            " ORDER BY label_id",
            (run, run),
        )
    ]
    now = audit.utc_now()
    conn.executemany(
        "INSERT INTO training_release (label_id, run_id, released_at) VALUES (?, ?, ?)",
        [(i, run, now) for i in ids],
    )
    audit.append(
        conn,
        actor=actor,
        action="training.release",
        subject=f"run:{run}",
        details={"label_ids": ids, "reason": reason},
    )
    return ids
