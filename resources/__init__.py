"""Packaged resources: embedded models, the bundled sample, icons.

`resource_path("models/default")` works from an editable checkout and from an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent


def resource_path(relative: str) -> Path:
    """Absolute path of a packaged resource (it may not exist; callers check)."""
    return ROOT / relative
