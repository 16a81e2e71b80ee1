"""`open_study`: the one entry point from a path to a `Study` (DC-1).

Dispatches on what the path is (folder, DICOMDIR, DICOM file, raster) and guarantees that only
`ImagingError` subclasses escape: every other failure of the third-party readers is wrapped with
its cause kept. `KeyboardInterrupt` and `SystemExit` pass through untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sos_core.errors import (
    CorruptFile,
    ImageTooLarge,
    ImagingError,
    ParameterError,
    StudyNotFound,
)
from sos_core.imaging.limits import DEFAULT_LIMITS, LoadLimits
from sos_core.imaging.study import Study

logger = logging.getLogger(__name__)

_RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def open_study(
    path: str | Path,
    *,
    series: str | None = None,
    spacing: tuple[float, float] | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
) -> Study:
    """Load a DICOM file, multi-frame DICOM, series folder / DICOMDIR, or PNG/JPEG/TIFF.

    series: for a folder holding several series, the `SeriesInfo.key` to open; without it the
        only image series is opened, or `SeriesNotChosen` lists the choices.
    spacing: pixel spacing (mm, row then column) for rasters, which carry none.
    Raises a subclass of `ImagingError` for anything wrong with the file(s), and
    `ParameterError` only for an invalid `spacing` argument.
    """
    p = Path(path)
    if spacing is not None and (
        len(spacing) != 2 or not all(isinstance(v, int | float) and 0 < v < 100 for v in spacing)
    ):
        # A caller's mistake, not the file's: say so instead of calling the file damaged.
        raise ParameterError("pixel spacing must be two positive numbers of millimetres.")
    try:
        return _dispatch(p, series=series, spacing=spacing, limits=limits)
    except (ImagingError, ImportError):
        # ImportError is a broken installation, not a bad file: let it surface as a fault.
        raise
    except MemoryError as exc:
        raise ImageTooLarge(
            f"{p.name} needs more memory than this computer has free; close other programs "
            "or open a smaller series.",
            path=p,
        ) from exc
    except RecursionError as exc:
        raise CorruptFile(
            f"{p.name} is damaged (its structure nests without end) and cannot be opened.", path=p
        ) from exc
    except PermissionError as exc:
        raise StudyNotFound(
            f"{p.name} cannot be read: you do not have permission to open it.", path=p
        ) from exc
    except OSError as exc:
        raise CorruptFile(
            f"{p.name} could not be read from disk; check that the file is complete and the "
            "drive is connected.",
            path=p,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - DC-1: every other failure becomes typed
        logger.debug("untyped failure while opening %s", p.name, exc_info=True)
        raise CorruptFile(
            f"{p.name} is damaged or not a valid image file and cannot be opened.", path=p
        ) from exc


def _dispatch(
    p: Path, *, series: str | None, spacing: tuple[float, float] | None, limits: LoadLimits
) -> Study:
    if not p.exists():
        raise StudyNotFound(f"{p.name} does not exist; check the path and try again.", path=p)
    if p.is_dir():
        from sos_core.imaging.series import open_folder

        return open_folder(p, series=series, limits=limits)
    if p.name.upper() == "DICOMDIR":
        from sos_core.imaging.dicomdir import open_dicomdir

        return open_dicomdir(p, series=series, limits=limits)
    if not p.is_file():
        raise StudyNotFound(f"{p.name} is not a regular file and cannot be opened.", path=p)
    if p.suffix.lower() in _RASTER_SUFFIXES:
        from sos_core.imaging.raster import read_raster

        return read_raster(p, spacing=spacing, limits=limits)
    from sos_core.imaging.dicom_file import read_dicom_file

    return read_dicom_file(p, limits=limits)
