"""Content-addressed pixel files: each file's name is the SHA-256 of its bytes (DB-8).

Write order: temp file in the same folder → fsync → `os.replace(tmp, <sha256>)` → fsync the
folder; only then may a database row name the blob. A crash therefore leaves at worst an
orphaned `*.tmp` (swept at startup) or an unreferenced complete blob, never a row pointing at a
missing or partial file. Pixels are stored as PNG (2-D 8/16-bit unsigned) or compressed NPZ
(everything else), both encoded from the array alone, so no source metadata can ride along
(DI-4); NPZ is read with `allow_pickle=False` (MW-1).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from sos_core.errors import BlobCorrupt, ParameterError
from sos_core.review.crash import crash_point
from sos_core.review.snapshot import fsync_dir

logger = logging.getLogger(__name__)

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_TMP = re.compile(r"^\.(\d+)\.[^.]+\.tmp$")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
# A temp file this old is an orphan even if a process with its pid exists (pid reuse).
ORPHAN_AGE_S = 3600.0


def encode_pixels(pixels: np.ndarray) -> bytes:
    """Encode an array to PNG (2-D uint8/uint16) or compressed NPZ, from the pixels alone."""
    arr = np.ascontiguousarray(pixels)
    if arr.dtype.kind not in "biuf" or arr.ndim not in (2, 3):
        raise ParameterError("Only 2-D or 3-D numeric pixel arrays can be stored.")
    if arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16):
        from PIL import Image

        buf = io.BytesIO()
        # A fresh Image from the array carries no text, EXIF, XMP or ICC chunks.
        Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=6)
        return buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, pixels=arr)
    return buf.getvalue()


def decode_pixels(data: bytes) -> np.ndarray:
    """Decode bytes written by `encode_pixels`; never unpickles anything."""
    if data.startswith(_PNG_MAGIC):
        from PIL import Image

        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            arr = np.asarray(img)
        return arr.astype(np.uint16) if arr.dtype.kind in "iu" and arr.itemsize > 1 else arr
    if data.startswith(_ZIP_MAGIC):
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return np.asarray(npz["pixels"])
    raise ValueError("not a blob this store wrote")


class BlobStore:
    """A folder of content-addressed pixel files. Safe for several processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the blob named `digest` lives."""
        if not _DIGEST.match(digest):
            raise ValueError("a blob name is 64 lowercase hex digits")
        return self.root / digest

    def put_array(self, pixels: np.ndarray) -> str:
        """Store `pixels`; returns the blob's SHA-256 name once the file is durable."""
        return self.put_bytes(encode_pixels(pixels))

    def put_bytes(self, data: bytes) -> str:
        """Store `data` durably under its SHA-256 and return that name (DB-8 write order)."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.exists() and _sha256_file(final) == digest:
            return digest
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=f".{os.getpid()}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            crash_point("blob_written")
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        crash_point("renamed")
        fsync_dir(self.root)
        logger.debug("blob %s… written (%d bytes)", digest[:12], len(data))
        return digest

    def read_bytes(self, digest: str) -> bytes:
        """The blob's bytes, verified against its name.

        Raises
        ------
        BlobCorrupt
            The file is missing or its SHA-256 does not match its name.
        """
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise BlobCorrupt(
                "A stored image file is missing from the review store; restore the store "
                "from a backup.",
                path=path,
            ) from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupt(
                "A stored image file in the review store is damaged; restore the store from a "
                "backup.",
                path=path,
            )
        return data

    def get_array(self, digest: str) -> np.ndarray:
        """The stored pixels (read-only array), verified against the blob's name."""
        arr = decode_pixels(self.read_bytes(digest))
        arr.flags.writeable = False
        return arr

    def sweep_orphans(self, *, max_age_s: float = ORPHAN_AGE_S) -> int:
        """Remove temp files left by a crashed writer; returns how many were removed.

        A temp file is an orphan when its writer's process is gone (POSIX) or it is older than
        `max_age_s`; a live writer's file in another window is left alone.
        """
        removed = 0
        now = time.time()
        for entry in self.root.iterdir():
            match = _TMP.match(entry.name)
            if not match or not entry.is_file():
                continue
            try:
                old = now - entry.stat().st_mtime > max_age_s
            except FileNotFoundError:
                continue  # its writer just renamed it
            if old or not _pid_alive(int(match.group(1))):
                entry.unlink(missing_ok=True)
                removed += 1
        if removed:
            logger.info("removed %d unfinished image file(s) left by an interrupted save", removed)
        return removed


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate it on Windows; rely on age instead
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
