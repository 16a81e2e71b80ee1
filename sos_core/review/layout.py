"""Where a store lives and how a new one comes into being.

A store is a folder::

    review.sqlite3   the database (WAL; its -wal/-shm are SQLite's alone, never touched by us)
    review.secret    the pseudonymisation key (DI-2): beside, never inside, the database
    blobs/           de-identified pixels, named by their SHA-256 (DB-8)
    snapshots/       backup() snapshots taken before each schema migration (DB-9)
    locked_set.json  the locked validation set's members (written by `sos_core.retrain`)

The default folder is `platformdirs.user_data_dir("SOS Review")`, overridden by `$SOS_DATA_DIR`
or by the folder the caller names.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from pathlib import Path

from sos_core.errors import StoreSecretMissing
from sos_core.review.deid import secret_fingerprint
from sos_core.review.schema import create_schema
from sos_core.review.snapshot import publish_new

logger = logging.getLogger(__name__)

ENV_DATA_DIR = "SOS_DATA_DIR"
DB_NAME = "review.sqlite3"
SECRET_NAME = "review.secret"
BLOB_DIR = "blobs"
SNAPSHOT_DIR = "snapshots"
LOCKED_SET_NAME = "locked_set.json"


def default_location() -> Path:
    """The store folder: `$SOS_DATA_DIR` if set, else the user's data folder for SOS Review."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("SOS Review", appauthor=False))


def check_secret(meta: dict[str, str], secret: bytes, folder: Path) -> None:
    """Refuse a key file that is not the one this store was created with."""
    if meta.get("secret_fingerprint") != secret_fingerprint(secret):
        raise StoreSecretMissing(
            f"The key file {SECRET_NAME} does not belong to this review store; restore the "
            "store's own key from its backup.",
            path=folder / SECRET_NAME,
        )


def create_database(db_path: Path, meta: dict[str, str], *, target: int) -> None:
    """Build a new store database in a temp file and publish it without overwriting.

    Two windows creating the same store at once both succeed: the first file published wins
    and the other is discarded before anything was written to it.
    """
    tmp = db_path.with_name(f".{db_path.name}.{secrets.token_hex(4)}.creating")
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = FULL")
        create_schema(conn, meta, target=target)
    finally:
        conn.close()  # rollback-journal mode: nothing but the one file remains
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    if not publish_new(tmp, db_path):
        logger.info("another window created the store first; using it")
