"""Resource limits every loader honours (DC-2, DC-3, DC-6)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """Caps checked before any pixel byte is decoded.

    max_pixel_bytes: Rows x Columns x Frames x SamplesPerPixel x ceil(BitsAllocated/8) cap.
    max_header_seconds / max_header_bytes: per-file budget during a folder scan.
    """

    max_pixel_bytes: int = 2 * 1024**3
    max_header_bytes: int = 64 * 1024**2
    max_header_seconds: float = 2.0
    max_files: int = 100_000


DEFAULT_LIMITS = LoadLimits()
