"""Which cases belong to the locked validation set, as far as the review store can tell.

The set itself (its integrity checks, fixing and growing it) belongs to `sos_core.retrain`; the
store needs only its member ids, to keep those cases out of the retraining queue, its counts
and its export (RG-4: the locked set is never trained on). Membership is read from two records
and their union is used, so an interrupted change errs towards locking more, never less:

- the audit log's `locked_set.fix` / `locked_set.grow` entries (hash-chained, in the database);
- `locked_set.json` beside the database, written just before its audit entry.

A damaged file is not this module's concern (loading the set for training reports it); the
audit log alone still names every member then.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from sos_core.review import audit
from sos_core.review.layout import LOCKED_SET_NAME

logger = logging.getLogger(__name__)

SUBJECT = "locked_set"
CHANGE_ACTIONS = ("locked_set.fix", "locked_set.grow")


def audited_members(conn: sqlite3.Connection) -> dict[str, str]:
    """case id → content hash of every member the audit log recorded (inside a transaction)."""
    out: dict[str, str] = {}
    for entry in audit.entries(conn, subject=SUBJECT):
        if entry.action in CHANGE_ACTIONS:
            out.update({str(k): str(v) for k, v in entry.details.get("added", {}).items()})
    return out


def file_members(folder: Path) -> frozenset[str]:
    """The case ids `locked_set.json` lists; empty when there is no readable file."""
    path = folder / LOCKED_SET_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return frozenset(str(m["case_id"]) for m in doc["members"])
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("the locked set file cannot be read; using the audit log's members")
        return frozenset()


def locked_case_ids(conn: sqlite3.Connection, folder: Path) -> frozenset[str]:
    """Every case id either record names as locked."""
    return frozenset(audited_members(conn)) | file_members(folder)
