"""Review-store schema: tables, append-only triggers and forward migrations (DB-9, RG-1).

`MIGRATIONS[v]` lists the statements that take a store from version v-1 to v; a new store runs
them all, in one transaction. An existing store is first snapshotted with `backup()` and then
migrated inside one transaction, `user_version` included (SQLite DDL and header PRAGMAs are
transactional), so a crash leaves either the old schema or the complete new one.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sos_core.review.crash import crash_point
from sos_core.review.snapshot import backup_database

logger = logging.getLogger(__name__)

APPLICATION_ID = 0x534F5352  # "SOSR": marks the file as ours (DB-7)
SCHEMA_VERSION = 3

REASON_CODES = ("confirmed", "ambiguous", "artefact", "wrong_anatomy", "model_error")
BOX_SOURCES = ("expert", "suggested")
SOURCE_KINDS = ("dicom", "raster", "synthetic")
BURN_IN_STATES = ("clear", "hold", "confirmed", "redacted")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _no_update_or_delete(table: str) -> tuple[str, ...]:
    return (
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only; add a new row instead'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only and cannot be deleted'); END",
    )


def _append_only(table: str, key: str) -> tuple[str, ...]:
    """Triggers that make `table` insert-only, even for `INSERT OR REPLACE` from a raw client."""
    return (
        *_no_update_or_delete(table),
        # REPLACE deletes silently unless recursive_triggers is on, which a raw client may not set.
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key}) "
        f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only; ids are never reused'); END",
    )


_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE cases (
        case_id TEXT PRIMARY KEY,
        content_hash TEXT NOT NULL UNIQUE CHECK (length(content_hash) = 64),
        blob TEXT NOT NULL CHECK (length(blob) = 64),
        modality TEXT NOT NULL,
        rows INTEGER NOT NULL CHECK (rows > 0),
        cols INTEGER NOT NULL CHECK (cols > 0),
        dtype TEXT NOT NULL,
        pixel_spacing TEXT,
        source_kind TEXT NOT NULL CHECK (source_kind IN {_in(SOURCE_KINDS)}),
        source_key TEXT,
        source_label TEXT,
        attributes TEXT NOT NULL,
        patient_sex TEXT CHECK (patient_sex IN ('M', 'F', 'O')),
        patient_age_months INTEGER CHECK (patient_age_months >= 0),
        deid TEXT NOT NULL,
        burn_in TEXT NOT NULL CHECK (burn_in IN {_in(BURN_IN_STATES)}),
        hold_reason TEXT,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE burn_in_confirmations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id TEXT NOT NULL REFERENCES cases(case_id),
        reviewer TEXT NOT NULL CHECK (length(trim(reviewer)) > 0),
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE predictions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id TEXT NOT NULL REFERENCES cases(case_id),
        model_version TEXT NOT NULL CHECK (length(model_version) > 0),
        stage INTEGER NOT NULL CHECK (stage >= 0),
        probabilities TEXT NOT NULL,
        flags TEXT NOT NULL,
        box TEXT,
        created_at TEXT NOT NULL
    )""",
    f"""CREATE TABLE labels (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id TEXT NOT NULL REFERENCES cases(case_id),
        stage INTEGER NOT NULL CHECK (stage >= 0),
        x0 REAL NOT NULL,
        y0 REAL NOT NULL,
        x1 REAL NOT NULL,
        y1 REAL NOT NULL,
        box_source TEXT NOT NULL CHECK (box_source IN {_in(BOX_SOURCES)}),
        reason TEXT NOT NULL CHECK (reason IN {_in(REASON_CODES)}),
        note TEXT NOT NULL DEFAULT '',
        reviewer TEXT NOT NULL CHECK (length(trim(reviewer)) > 0),
        created_at TEXT NOT NULL,
        prediction_id INTEGER REFERENCES predictions(id),
        model_version TEXT,
        supersedes INTEGER UNIQUE REFERENCES labels(id),
        CHECK (x0 < x1 AND y0 < y1),
        CHECK (supersedes IS NULL OR supersedes < id)
    )""",
    # A chain is linear and stays within one case; `supersedes < id` makes it acyclic.
    """CREATE TRIGGER labels_supersede_same_case BEFORE INSERT ON labels
        WHEN NEW.supersedes IS NOT NULL
         AND (SELECT case_id FROM labels WHERE id = NEW.supersedes) IS NOT NEW.case_id
        BEGIN SELECT RAISE(ABORT, 'a label can only supersede a label of the same case'); END""",
    """CREATE TRIGGER labels_supersede_once BEFORE INSERT ON labels
        WHEN NEW.supersedes IS NOT NULL
         AND EXISTS (SELECT 1 FROM labels WHERE supersedes = NEW.supersedes)
        BEGIN SELECT RAISE(ABORT, 'that label has already been superseded'); END""",
    """CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    *_append_only("labels", "id"),
    *_append_only("predictions", "id"),
    *_append_only("audit", "seq"),
    *_append_only("burn_in_confirmations", "id"),
)

_V2 = (
    """CREATE TABLE training_use (
        label_id INTEGER NOT NULL REFERENCES labels(id),
        run_id TEXT NOT NULL CHECK (length(run_id) > 0),
        used_at TEXT NOT NULL,
        PRIMARY KEY (label_id, run_id)
    )""",
    "CREATE INDEX labels_by_case ON labels(case_id, id)",
    "CREATE INDEX predictions_by_case ON predictions(case_id, id)",
    "CREATE INDEX audit_by_subject ON audit(subject)",
    "CREATE INDEX confirmations_by_case ON burn_in_confirmations(case_id)",
)

# v3: withdrawing a label (undo of a case's first label) and releasing the labels of a model
# that was rolled back, both as new rows. A retraction cannot live in `labels` itself: its
# NOT NULL stage and box cannot be relaxed without rebuilding that append-only table.
_V3 = (
    """CREATE TABLE label_retractions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        label_id INTEGER NOT NULL UNIQUE REFERENCES labels(id),
        case_id TEXT NOT NULL REFERENCES cases(case_id),
        reviewer TEXT NOT NULL CHECK (length(trim(reviewer)) > 0),
        note TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    )""",
    # Only the label in force can be withdrawn: the case's newest one, of that very case.
    """CREATE TRIGGER label_retractions_same_case BEFORE INSERT ON label_retractions
        WHEN (SELECT case_id FROM labels WHERE id = NEW.label_id) IS NOT NEW.case_id
        BEGIN SELECT RAISE(ABORT, 'a retraction must name a label of its own case'); END""",
    """CREATE TRIGGER label_retractions_newest_only BEFORE INSERT ON label_retractions
        WHEN EXISTS (SELECT 1 FROM labels WHERE case_id = NEW.case_id AND id > NEW.label_id)
        BEGIN SELECT RAISE(ABORT, 'only the newest label of a case can be withdrawn'); END""",
    # A withdrawn label is no longer in force, so nothing may correct it.
    """CREATE TRIGGER labels_not_after_retraction BEFORE INSERT ON labels
        WHEN NEW.supersedes IS NOT NULL
         AND EXISTS (SELECT 1 FROM label_retractions WHERE label_id = NEW.supersedes)
        BEGIN SELECT RAISE(ABORT, 'that label was withdrawn and cannot be corrected'); END""",
    *_append_only("label_retractions", "id"),
    "CREATE INDEX retractions_by_case ON label_retractions(case_id)",
    """CREATE TABLE training_release (
        label_id INTEGER NOT NULL REFERENCES labels(id),
        run_id TEXT NOT NULL CHECK (length(run_id) > 0),
        released_at TEXT NOT NULL,
        PRIMARY KEY (label_id, run_id)
    )""",
    *_no_update_or_delete("training_release"),
    # `training_use` is history too (INSERT OR IGNORE re-marks, so no REPLACE guard there).
    *_no_update_or_delete("training_use"),
)

MIGRATIONS: dict[int, tuple[str, ...]] = {1: _V1, 2: _V2, 3: _V3}
RETRACTIONS_SINCE = 3  # the first schema with `label_retractions` and `training_release`


def _apply(conn: sqlite3.Connection, start: int, target: int) -> None:
    for version in range(start + 1, target + 1):
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {int(target)}")


def create_schema(
    conn: sqlite3.Connection, meta: dict[str, str], *, target: int = SCHEMA_VERSION
) -> None:
    """Build a store's schema from nothing, in one transaction, and stamp it as ours."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        _apply(conn, 0, target)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", sorted(meta.items()))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def migrate(
    conn: sqlite3.Connection, db_path: Path, snapshot_dir: Path, *, target: int = SCHEMA_VERSION
) -> Path | None:
    """Bring an existing store forward to `target`; returns the pre-migration snapshot, if any.

    The snapshot is taken with `Connection.backup()` (never a file copy, DB-6/DB-9) before the
    single migrating transaction starts.
    """
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current >= target:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    snapshot = snapshot_dir / f"{db_path.stem}-v{current}-{stamp}.sqlite3"
    backup_database(conn, snapshot)
    logger.info("store schema v%d snapshot written before migration", current)
    crash_point("migration_snapshot")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another window may have migrated in the meantime.
        now = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if now < target:
            _apply(conn, now, target)
        crash_point("migration_applied")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    crash_point("migration_committed")
    logger.info("store schema migrated from v%d to v%d", current, target)
    return snapshot
