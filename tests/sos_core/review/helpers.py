"""Shared helpers for the review-store tests: synthetic images, forked writers, file scans."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import sqlite3
import traceback
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sos_core.review import CaseRecord, ReviewStore

REPO = Path(__file__).resolve().parents[3]
CHILD = Path(__file__).with_name("store_child.py")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic(seed: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A random 12-bit image; different seeds give different pixels (hence different cases)."""
    return np.random.default_rng(seed).integers(0, 4096, size=shape, dtype=np.uint16)


def add_case(store: ReviewStore, seed: int = 0) -> CaseRecord:
    return store.ingest(synthetic(seed), source_kind="synthetic", pixel_spacing=(0.3, 0.3)).case


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SOS_CRASH_AT", None)
    return env


def fork_child(body: Callable[[int], None], env: dict[str, str] | None = None) -> tuple[int, int]:
    """Fork a child that runs `body(write_fd)` and never returns; returns (pid, read_fd).

    The child reports progress by writing lines to the pipe; whatever happens, it ends with
    `os._exit`, so it never runs the parent's pytest machinery.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(r)
            if env:
                os.environ.update(env)
            body(w)
        except BaseException:  # noqa: BLE001 - report anything to the parent, then exit
            os.write(w, ("ERR " + traceback.format_exc().replace("\n", " | ") + "\n").encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def kill_and_collect(pid: int, read_fd: int, *, kill: bool = True) -> tuple[list[str], int]:
    """SIGKILL the child (if asked), reap it and return (lines it wrote, wait status)."""
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    chunks = []
    while True:
        data = os.read(read_fd, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(read_fd)
    text = b"".join(chunks).decode()
    # A line cut by the kill has no newline: it was never fully acknowledged.
    lines = text.split("\n")[:-1]
    return lines, status


def killed_by_sigkill(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expanded_bytes(path: Path) -> bytes:
    """A file's bytes plus the decompressed payloads of PNG chunks and zip (NPZ) members."""
    data = path.read_bytes()
    parts = [data]
    if data.startswith(PNG_MAGIC):
        idat = b""
        pos = 8
        while pos + 8 <= len(data):
            n = int.from_bytes(data[pos : pos + 4], "big")
            kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
            parts.append(kind + body)
            if kind == b"IDAT":
                idat += body
            elif kind in (b"zTXt", b"iCCP"):
                parts.append(zlib.decompress(body[body.index(b"\0") + 2 :]))
            pos += 12 + n
        if idat:
            parts.append(zlib.decompress(idat))
    elif data.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            parts += [zf.read(name) for name in zf.namelist()] + [" ".join(zf.namelist()).encode()]
    return b"".join(parts)


def png_chunk_types(data: bytes) -> list[bytes]:
    assert data.startswith(PNG_MAGIC)
    kinds, pos = [], 8
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + n
    return kinds


def needles(text: str) -> list[bytes]:
    """The byte patterns of `text` in UTF-8/ASCII and in UTF-16 (both byte orders)."""
    return [text.encode("utf-8"), text.encode("utf-16-le"), text.encode("utf-16-be")]


def find_in_tree(roots: list[Path], texts: list[str]) -> list[str]:
    """Every (file, text) hit of any of `texts` under `roots`, decompressing blobs and PNGs."""
    hits = []
    pats = [(t, p) for t in texts for p in needles(t)]
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            blob = expanded_bytes(f)
            hits += [f"{f.name}: {t}" for t, p in pats if p in blob]
    return hits


def raw_connect(db: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, as a third-party tool (or an attacker) would open it."""
    return sqlite3.connect(str(db), isolation_level=None)
