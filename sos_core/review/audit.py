"""Tamper-evident audit log: a SHA-256 hash chain over canonical JSON entries (RG-2).

Entry i stores `h_i = SHA-256(h_{i-1} || canonical_json(entry_i))` with `h_0`'s predecessor 32
zero bytes. Editing, inserting or removing a row breaks the chain at that row, and `verify()`
names the first broken entry. Truncating the newest entries cannot be detected from the chain
alone: that needs an external anchor (e.g. the head hash printed into each backup's name).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

GENESIS = bytes(32)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row. `time` is UTC ISO 8601; `details` is JSON-able and holds no PHI."""

    seq: int
    time: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    hash: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Result of `verify()`: `first_broken` is the seq of the first bad entry, None if clean."""

    ok: bool
    n_entries: int
    first_broken: int | None


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, ASCII only, no NaN."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def utc_now() -> str:
    """The current UTC time as ISO 8601 with microseconds and a Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry_bytes(
    seq: int, time: str, actor: str, action: str, subject: str, details: dict[str, Any]
) -> bytes:
    return canonical_json(
        {
            "seq": seq,
            "time": time,
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        }
    )


def chain_hash(prev: bytes, entry: bytes) -> bytes:
    """h_i = SHA-256(h_{i-1} || canonical_json(entry_i))."""
    return hashlib.sha256(prev + entry).digest()


def append(
    conn: sqlite3.Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry; must run inside the caller's open write transaction (DB-2).

    The write lock held by that transaction serialises appends across processes, so two
    windows never fork the chain.
    """
    if not conn.in_transaction:
        raise RuntimeError("audit.append must run inside a write transaction")
    details = dict(details or {})
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    prev_seq, prev_hash = (row[0], bytes.fromhex(row[1])) if row else (0, GENESIS)
    seq = prev_seq + 1
    time = utc_now()
    digest = chain_hash(prev_hash, _entry_bytes(seq, time, actor, action, subject, details))
    conn.execute(
        "INSERT INTO audit (seq, created_at, actor, action, subject, details, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            time,
            actor,
            action,
            subject,
            canonical_json(details).decode("ascii"),
            prev_hash.hex(),
            digest.hex(),
        ),
    )
    return AuditEntry(seq, time, actor, action, subject, details, digest.hex())


def entries(conn: sqlite3.Connection, *, subject: str | None = None) -> list[AuditEntry]:
    """All entries in order (optionally those about one subject, e.g. "case:<id>")."""
    sql = "SELECT seq, created_at, actor, action, subject, details, hash FROM audit"
    args: tuple[str, ...] = ()
    if subject is not None:
        sql += " WHERE subject = ?"
        args = (subject,)
    rows = conn.execute(sql + " ORDER BY seq", args).fetchall()
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]


def verify(conn: sqlite3.Connection) -> AuditReport:
    """Recompute the chain from the first entry; report the first entry that does not match."""
    prev = GENESIS
    expected_seq = 1
    total = int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])
    cursor = conn.execute(
        "SELECT seq, created_at, actor, action, subject, details, hash FROM audit ORDER BY seq"
    )
    for seq, time, actor, action, subject, details_text, stored in cursor:
        try:
            details = json.loads(details_text)
            digest = chain_hash(prev, _entry_bytes(seq, time, actor, action, subject, details))
        except (TypeError, ValueError):
            digest = b""
        # A gap in seq (a deleted row) breaks the chain at the row after the gap.
        if seq != expected_seq or digest.hex() != stored:
            logger.warning("audit chain broken at entry %d", seq)
            return AuditReport(False, total, int(seq))
        prev = digest
        expected_seq += 1
    return AuditReport(True, total, None)
