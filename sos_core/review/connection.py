"""The one way to open the review database: checks first, then PRAGMAs set and read back.

Before SQLite touches a file we read its 100-byte header ourselves (DB-7), so a foreign or
damaged file is refused without a single byte, lock file or `-wal` being written. Every
connection then sets *and reads back* the settings durability rests on (DB-1): WAL journal,
`synchronous=FULL`, foreign keys, recursive triggers (so `INSERT OR REPLACE` cannot dodge the
append-only triggers) and a busy timeout. A store on a network file system is refused (DB-4):
SQLite's locking and WAL shared memory are not safe there (https://sqlite.org/wal.html, "WAL
does not work over a network filesystem").
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sos_core.errors import (
    CorruptStore,
    NotAStore,
    StoreConfigError,
    StoreOnNetworkDrive,
    StoreTooNew,
)
from sos_core.review.schema import APPLICATION_ID, SCHEMA_VERSION

logger = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000
_MIN_BUSY_TIMEOUT_MS = 5_000

# Linux fs types (from /proc/self/mountinfo) on which SQLite locking or WAL is unsafe.
REMOTE_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "afs",
        "ncpfs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "webdav",
        "afpfs",
        "sshfs",
        "fuse",
    }
)


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    """What the first 100 bytes of a store file say (https://sqlite.org/fileformat.html)."""

    page_size: int
    page_count: int | None
    user_version: int
    application_id: int


def check_header(db_path: Path, *, supported_version: int = SCHEMA_VERSION) -> HeaderInfo:
    """Refuse a file that is not our store, without opening it in SQLite (DB-7).

    Raises
    ------
    NotAStore
        Not an SQLite file, or an SQLite file of another application.
    CorruptStore
        Our store, but truncated.
    StoreTooNew
        Our store, written by a newer schema version.
    """
    name = db_path.name
    with db_path.open("rb") as fh:
        head = fh.read(100)
        size = os.fstat(fh.fileno()).st_size
    if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
        raise NotAStore(
            f"{name} is not an SOS Review store and was left untouched; choose another file "
            "or start a new store elsewhere.",
            path=db_path,
        )
    raw_page = int.from_bytes(head[16:18], "big")
    page_size = 65536 if raw_page == 1 else raw_page
    app_id = int.from_bytes(head[68:72], "big", signed=True)
    user_version = int.from_bytes(head[60:64], "big", signed=True)
    if app_id != APPLICATION_ID:
        raise NotAStore(
            f"{name} is a database of another program, not an SOS Review store, and was left "
            "untouched; choose another file or start a new store elsewhere.",
            path=db_path,
        )
    if user_version > supported_version:
        raise StoreTooNew(
            f"{name} was written by a newer version of SOS Review and was left untouched; "
            "update SOS Review to open it.",
            path=db_path,
        )
    page_count = _declared_pages(head)
    if page_size < 512 or page_size & (page_size - 1) or user_version < 1:
        raise _truncated(db_path)
    # With a non-empty -wal beside it, an interrupted checkpoint may legitimately leave the main
    # file shorter than its header says; SQLite finishes that checkpoint from the WAL.
    wal = db_path.with_name(name + "-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0
    if not wal_pending and (
        size % page_size or (page_count is not None and page_count * page_size > size)
    ):
        raise _truncated(db_path)
    return HeaderInfo(page_size, page_count, user_version, app_id)


def _declared_pages(head: bytes) -> int | None:
    """The in-header page count, valid only when the two change counters agree."""
    if head[24:28] != head[92:96]:
        return None
    return int.from_bytes(head[28:32], "big") or None


def _truncated(db_path: Path) -> CorruptStore:
    return CorruptStore(
        f"{db_path.name} is damaged (it is shorter than its own header says) and was left "
        "untouched; restore a backup or start a new store elsewhere.",
        path=db_path,
    )


def connect(
    db_path: Path, *, create: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """Open the store database through the one factory, with every PRAGMA read back (DB-1).

    An existing file's header is checked first (DB-7). `create=True` allows SQLite to create a
    missing file (used only for a store's first, temporary file). The connection is in
    autocommit mode: callers open transactions explicitly (`BEGIN IMMEDIATE`).

    Raises
    ------
    NotAStore, CorruptStore, StoreTooNew
        From the header check.
    StoreConfigError
        SQLite did not accept a setting.
    """
    if not create:
        check_header(db_path)
    mode = "rwc" if create else "rw"
    # mode=rw: SQLite must never create a store by accident at a mistyped path.
    uri = f"{db_path.resolve().as_uri()}?mode={mode}"
    conn = sqlite3.connect(
        uri,
        uri=True,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        _configure(conn, db_path, busy_timeout_ms)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, db_path: Path, busy_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA recursive_triggers = ON")
    got = read_pragmas(conn)
    wanted_ok = (
        got["journal_mode"] == "wal"
        and got["synchronous"] in (2, 3)
        and got["foreign_keys"] == 1
        and got["recursive_triggers"] == 1
        and got["busy_timeout"] >= _MIN_BUSY_TIMEOUT_MS
    )
    if not wanted_ok:
        logger.error("store settings not accepted by SQLite: %s", got)
        raise StoreConfigError(
            f"{db_path.name} could not be opened safely (SQLite refused write-ahead logging or "
            "full sync); move the store to a folder on this computer's own disk.",
            path=db_path,
        )


def read_pragmas(conn: sqlite3.Connection) -> dict[str, int | str]:
    """The durability PRAGMAs as SQLite reports them now (DB-1)."""
    names = (
        "journal_mode",
        "synchronous",
        "foreign_keys",
        "busy_timeout",
        "recursive_triggers",
        "application_id",
        "user_version",
    )
    out: dict[str, int | str] = {}
    for name in names:
        out[name] = conn.execute(f"PRAGMA {name}").fetchone()[0]
    return out


def check_identity(conn: sqlite3.Connection, db_path: Path) -> int:
    """Re-check application_id and user_version through SQLite; returns the schema version."""
    got = read_pragmas(conn)
    if got["application_id"] != APPLICATION_ID:
        raise NotAStore(
            f"{db_path.name} is not an SOS Review store and was left untouched; choose another "
            "file or start a new store elsewhere.",
            path=db_path,
        )
    version = int(got["user_version"])
    if version > SCHEMA_VERSION:
        raise StoreTooNew(
            f"{db_path.name} was written by a newer version of SOS Review and was left "
            "untouched; update SOS Review to open it.",
            path=db_path,
        )
    return version


# --- network file systems (DB-4) -------------------------------------------------------------


def is_unc(path: str | os.PathLike[str]) -> bool:
    """True for a Windows UNC path (\\\\server\\share\\...), on any platform."""
    text = os.fspath(path)
    return text.startswith("\\\\") or (sys.platform == "win32" and text.startswith("//"))


def filesystem_type(path: str | os.PathLike[str]) -> str | None:
    """The file-system type holding `path` ("ext4", "nfs4", "remote", ...), None if unknown.

    Tests monkeypatch this function to simulate a network mount.
    """
    target = _existing_ancestor(Path(path))
    if sys.platform.startswith("linux"):
        return _linux_fs_type(target)
    if sys.platform == "win32":
        return _windows_fs_type(target)
    if sys.platform == "darwin":
        return _mac_fs_type(target)
    return None


def remote_reason(path: str | os.PathLike[str]) -> str | None:
    """Why `path` looks like a network location, or None when it looks local."""
    if is_unc(path):
        return "a network share"
    fstype = filesystem_type(path)
    if fstype is None:
        return None
    base = fstype.lower()
    if base == "remote" or base in REMOTE_FS_TYPES:
        return f"a network file system ({base})"
    if base.startswith("fuse.") and base != "fuseblk":
        return f"a remote or user-space file system ({base})"
    return None


def ensure_local(path: str | os.PathLike[str]) -> None:
    """Refuse a store folder on a network or remote file system (DB-4).

    Raises
    ------
    StoreOnNetworkDrive
        With one sentence naming the kind of file system.
    """
    reason = remote_reason(path)
    if reason is not None:
        raise StoreOnNetworkDrive(
            f"The review store cannot be kept on {reason}, where its data can be lost; choose "
            "a folder on this computer's own disk.",
            path=Path(path),
        )


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p.resolve()


def _linux_fs_type(target: Path) -> str | None:
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right:
            continue
        mount_point = _unescape_mount(fields[4])
        if _is_under(target, mount_point) and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), right.split()[0])
    return best[1] if best else None


def _unescape_mount(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def _is_under(target: Path, mount_point: str) -> bool:
    return mount_point == "/" or target == Path(mount_point) or Path(mount_point) in target.parents


def _windows_fs_type(target: Path) -> str | None:
    import ctypes

    drive = target.drive
    if not drive:
        return None
    drive_remote = 4  # GetDriveTypeW's DRIVE_REMOTE
    kind = ctypes.windll.kernel32.GetDriveTypeW(drive + "\\")  # type: ignore[attr-defined]
    return "remote" if kind == drive_remote else "local"


def _mac_fs_type(target: Path) -> str | None:
    try:
        out = subprocess.run(
            ["/sbin/mount"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    best: tuple[int, str] | None = None
    for line in out.splitlines():
        # "//user@server/share on /Volumes/share (smbfs, nodev, nosuid, mounted by user)"
        _, sep, rest = line.partition(" on ")
        mount_point, sep2, opts = rest.rpartition(" (")
        if not sep or not sep2:
            continue
        fstype = opts.split(",")[0].strip(" )")
        if _is_under(target, mount_point) and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), fstype)
    return best[1] if best else None
