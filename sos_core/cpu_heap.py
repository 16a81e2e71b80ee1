"""Keep freed memory in the process's heap while training on the CPU (glibc only).

A training step at 256-384 px allocates and frees activation buffers of 30-300 MB. glibc's
malloc serves every block above 32 MB (its largest mmap threshold) with a fresh `mmap` and
gives it back with `munmap` when freed, so each step faults every page of its activations in
again: about a quarter of the preset's CPU time was the kernel's (`time`: sys 29 of 127 min).
Inside `retained_heap()` malloc takes everything from the heap and does not trim it, so the
second step reuses the first one's pages. A student step at 384 px took 0.73x the time
(benchmarks/train_speed.py), and the preset's kernel time fell to 1.1 min. On leaving, the
defaults come back and the heap is trimmed, so a long-lived process does not keep its
training peak. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import platform
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
# On exit: what glibc's dynamic thresholds settle at once large blocks have been freed (any
# mallopt call fixes the thresholds, so the adaptive defaults cannot simply be switched back on).
_EXIT_MMAP_THRESHOLD = 32 * 1024 * 1024
_EXIT_TRIM_THRESHOLD = 2 * _EXIT_MMAP_THRESHOLD
_DEFAULT_MMAP_MAX = 65536

_depth = 0  # nested blocks: only the outermost changes and restores the settings
_lock = threading.Lock()


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("mallopt", "malloc_trim")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def heap_control_available() -> bool:
    """Whether `retained_heap` changes anything on this platform."""
    return _glibc() is not None


@contextlib.contextmanager
def retained_heap() -> Iterator[bool]:
    """Serve allocations from the heap and never trim it, for the block's duration.

    Yields whether the setting is in effect. The process-wide malloc settings change, so use
    it around work that owns the process (training, a preset), not around GUI code. Blocks
    may nest; the outermost one restores.
    """
    global _depth
    libc = _glibc()
    with _lock:
        _depth += 1
        if libc is not None and _depth == 1:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, -1)  # -1: never trim
    if libc is None:
        logger.debug("heap retention is not available here; malloc keeps its defaults")
    try:
        yield libc is not None
    finally:
        with _lock:
            _depth -= 1
            if libc is not None and _depth == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_MMAP_THRESHOLD, _EXIT_MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _EXIT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
