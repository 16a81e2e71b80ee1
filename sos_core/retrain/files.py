"""Durable small files and inter-process locks for the registry and the locked set.

A pointer or manifest is replaced atomically: temp file in the same folder, fsync, `os.replace`,
fsync the folder (STYLE F; the DB-8 pattern). A reader therefore sees the old file or the new
one, never a mix. Locks are advisory `flock`/`msvcrt` locks on a lock file: the operating system
drops them when the holder dies, so a crashed retrain never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sos_core.durable import write_bytes_atomic
from sos_core.review.audit import canonical_json

logger = logging.getLogger(__name__)


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of the canonical JSON of `obj` (sorted keys, no spaces, ASCII)."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace `path` with pretty JSON of `obj` atomically and durably."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    write_bytes_atomic(path, (text + "\n").encode("utf-8"))


def write_new_file(path: Path, data: bytes) -> None:
    """Create `path` (which must not exist) with `data`, fsynced; used inside new folders."""
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def append_line(path: Path, obj: Any) -> None:
    """Append one JSON line to an append-only log and fsync it."""
    line = json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: Path) -> Any:
    """Parse a JSON file; raises OSError or ValueError for the caller to turn into a sentence."""
    return json.loads(path.read_text(encoding="utf-8"))


class FileLock:
    """An exclusive inter-process lock on `path`; `acquire(blocking=False)` may return False.

    Two `FileLock`s on the same path conflict even inside one process (each opens its own file
    description), so a test can hold the lock and watch a second request being refused.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: IO[bytes] | None = None

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take the lock; with `blocking=False` return False at once when another holds it."""
        if self._fh is not None:
            raise RuntimeError("the lock is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+b")
        try:
            if not _lock(fh, blocking):
                fh.close()
                return False
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        with contextlib.suppress(OSError):  # who holds it, for a person looking at the folder
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n".encode("ascii"))
            fh.flush()
        return True

    def release(self) -> None:
        """Drop the lock (the file stays; its presence means nothing without the lock)."""
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                _unlock(fh)
            finally:
                fh.close()

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fh: IO[bytes], blocking: bool) -> bool:
        fh.seek(0)
        mode = msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK
        try:
            msvcrt.locking(fh.fileno(), mode, 1)
        except OSError:
            if blocking:
                raise
            return False
        return True

    def _unlock(fh: IO[bytes]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fh: IO[bytes], blocking: bool) -> bool:
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fh.fileno(), flags)
        except BlockingIOError:
            return False
        return True

    def _unlock(fh: IO[bytes]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
