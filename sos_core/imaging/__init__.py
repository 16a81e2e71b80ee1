"""Imaging: paths to `Study` records, windowing and sagittal reformats. No torch here."""

from __future__ import annotations

from sos_core.imaging.limits import DEFAULT_LIMITS, LoadLimits
from sos_core.imaging.loader import open_study
from sos_core.imaging.study import SeriesInfo, Study

__all__ = ["DEFAULT_LIMITS", "LoadLimits", "SeriesInfo", "Study", "open_study"]
