"""Loading one case off the GUI thread: `Study`, its slice count and the mid-sagittal start.

`load_case` is the "execute" half (STYLE A.3): a plain function the worker runs. The GUI half
captures the path, series key and case id, then shows the `LoadedCase` it gets back.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sos_desktop.workers import check_cancel

if TYPE_CHECKING:
    from sos_core.imaging.study import Study

logger = logging.getLogger(__name__)

Spacing2D = tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class LoadedCase:
    """A study ready to show.

    slice_count / start_slice: for volumes, the number of sagittal slices and the automatic
        mid-sagittal one; for frame stacks, frames and 0; None for 2-D images.
    """

    case_id: str
    path: Path
    study: Study
    slice_count: int | None
    start_slice: int | None
    seconds: float

    @property
    def hu(self) -> bool:
        """Whether pixel values are Hounsfield units (CT), which enables the CT presets."""
        return self.study.modality.upper() == "CT"


def load_case(
    path: Path,
    case_id: str,
    series: str | None,
    progress: Callable[[float], None],
    cancel: threading.Event,
    spacing: Spacing2D = None,
) -> LoadedCase:
    """Worker thread: open the study and find where to start viewing it.

    spacing: (row mm, col mm) for a raster, e.g. from its worklist entry; when None, a dataset
    manifest next to the raster is asked (a PNG carries no spacing of its own).
    """
    from sos_core.dataset_manifest import spacing_for
    from sos_core.imaging import open_study

    t0 = time.perf_counter()
    progress(0.05)
    if spacing is None and not path.is_dir():
        spacing = spacing_for(path)
    kwargs: dict[str, Any] = {"series": series, "spacing": spacing}
    params = inspect.signature(open_study).parameters
    # Pass progress / cancel through once the loader accepts them (the imaging issue's plan).
    if "progress" in params:
        kwargs["progress"] = lambda f: progress(0.05 + 0.85 * f)
    if "cancel" in params:
        kwargs["cancel"] = cancel
    study = open_study(path, **kwargs)
    check_cancel(cancel)
    progress(0.9)
    count: int | None = None
    start: int | None = None
    if study.kind == "volume":
        from sos_core.imaging.midsagittal import find_midsagittal
        from sos_core.imaging.reformat import sagittal_count

        count = int(sagittal_count(study))
        start = _as_index(find_midsagittal(study))
    elif study.kind == "frames":
        count, start = study.shape[0], 0
    progress(1.0)
    return LoadedCase(case_id, path, study, count, start, time.perf_counter() - t0)


def _as_index(found: Any) -> int:
    """find_midsagittal's answer as a slice index (an int, or a record with `.index`)."""
    if isinstance(found, int | np.integer):
        return int(found)
    for name in ("index", "slice_index", "slice"):
        if hasattr(found, name):
            return int(getattr(found, name))
    raise TypeError(f"unexpected mid-sagittal result {type(found).__name__}")


def slice_getter(case: LoadedCase) -> Callable[[int], tuple[np.ndarray, Spacing2D]]:
    """A GUI-thread function index → (2-D pixels, (row mm, col mm)) for the case's slices."""
    study = case.study
    if study.kind == "frames":
        spacing = study.spacing[1:] if study.spacing else None

        def frame(index: int) -> tuple[np.ndarray, Spacing2D]:
            return study.pixels[index], (spacing[0], spacing[1]) if spacing else None

        return frame
    from sos_core.imaging.reformat import sagittal_slice

    def sagittal(index: int) -> tuple[np.ndarray, Spacing2D]:
        return _as_slice(sagittal_slice(study, index), study)

    return sagittal


def _as_slice(result: Any, study: Study) -> tuple[np.ndarray, Spacing2D]:
    """Accept an array, an (array, spacing) pair, or a record with pixels and spacing."""
    if isinstance(result, np.ndarray):
        return result, None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], np.ndarray):
        sp = result[1]
        return result[0], (float(sp[0]), float(sp[1])) if sp is not None else None
    pixels = result.pixels
    sp = getattr(result, "spacing", None)
    return pixels, (float(sp[0]), float(sp[1])) if sp is not None else None


def image_spacing(study: Study) -> Spacing2D:
    """(row mm, col mm) of a 2-D study, or None when unknown."""
    if study.kind != "image" or study.spacing is None:
        return None
    return float(study.spacing[0]), float(study.spacing[1])
