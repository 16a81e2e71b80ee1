"""Consistent copies of a live store through SQLite's online backup API (DB-6, DB-9).

The live database file (and its `-wal`/`-shm`) is never copied byte-wise: a file copy taken while
another window writes can mix pages of two transactions. `Connection.backup()` copies one
consistent snapshot; the result is made a self-contained rollback-journal file and published
atomically under a name that did not exist before.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from pathlib import Path

from sos_core.durable import fsync_dir  # noqa: F401 - re-exported for existing callers

logger = logging.getLogger(__name__)


def publish_new(tmp: Path, dest: Path) -> bool:
    """Give the finished file `tmp` the name `dest` unless `dest` exists; True if published.

    `link()` never replaces a file that appeared meanwhile (another window creating the same
    store); where a file system has no hard links we fall back to a checked `os.replace`.
    """
    try:
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        except OSError:
            if dest.exists():
                return False
            os.replace(tmp, dest)
        fsync_dir(dest.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def backup_database(conn: sqlite3.Connection, dest: Path) -> Path:
    """Write a consistent snapshot of `conn`'s database to the new file `dest`.

    Raises
    ------
    FileExistsError
        `dest` exists; a backup never overwrites anything.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise FileExistsError(dest.name)
    partial = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.partial")
    target = sqlite3.connect(str(partial), isolation_level=None)
    try:
        conn.backup(target)  # pages=-1: one step, hence one read transaction, one snapshot
        # The copy inherits WAL mode from its source; a backup must be one self-contained file.
        target.execute("PRAGMA journal_mode = DELETE")
        target.execute("PRAGMA synchronous = FULL")
    finally:
        target.close()
    with partial.open("rb+") as fh:
        os.fsync(fh.fileno())
    if not publish_new(partial, dest):
        raise FileExistsError(dest.name)
    logger.debug("database snapshot written to %s", dest.name)
    return dest
