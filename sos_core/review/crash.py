"""Crash-point hooks for the durability tests (DB-8, DB-9).

`SOS_CRASH_AT=<point>` makes the process kill itself (SIGKILL, like `kill -9`: no cleanup, no
flush, no `finally`) when it reaches that point, so tests can prove what survives a crash at the
worst moment. Unset, a hook costs one environment lookup.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

ENV_VAR = "SOS_CRASH_AT"

# Every point a test may name; a typo in the variable is then easy to spot in the docs.
CRASH_POINTS = (
    "blob_written",  # blob temp file written and fsynced, not yet renamed
    "renamed",  # blob renamed to its SHA-256 name, directory not yet fsynced, no DB row yet
    "committed",  # the DB row referencing the blob has committed
    "migration_snapshot",  # the pre-migration backup() snapshot exists, migration not started
    "migration_applied",  # migration DDL ran inside the open transaction, not yet committed
    "migration_committed",  # migration committed
)


def crash_point(name: str) -> None:
    """Kill this process at once if `SOS_CRASH_AT` names `name` (tests only)."""
    if os.environ.get(ENV_VAR) != name:
        return
    logger.debug("crash point %s reached: killing this process", name)
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # Windows has no SIGKILL; _exit skips cleanup just the same
