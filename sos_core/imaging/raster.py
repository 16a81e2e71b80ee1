"""PNG / JPEG / TIFF (exported cephalograms) -> `Study` (DC-3).

Pillow is asked to recognise only PNG, JPEG and TIFF, so a GIF, FITS or any other format renamed
``.png`` is refused instead of being decoded by one of Pillow's many other plugins. Its
decompression-bomb guard is tied to our pixel cap and escalated to `ImageTooLarge`, and the
declared size is checked against the cap before a single pixel is decoded.
"""

from __future__ import annotations

import logging
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sos_core.errors import CorruptFile, ImageTooLarge, NotAnImage, ParameterError
from sos_core.imaging.limits import LoadLimits
from sos_core.imaging.pixels import colour_warning, percentile_window, to_grey
from sos_core.imaging.study import SeriesInfo, Study

logger = logging.getLogger(__name__)

FORMATS = ("PNG", "JPEG", "TIFF")

# Pillow keeps most modes at up to 4 bytes per pixel in memory (RGB is stored as RGBX), so the
# pixel count allowed is the byte cap over 4.
_BYTES_PER_PIXEL_IN_PILLOW = 4
# Image.MAX_IMAGE_PIXELS is process-wide; set and restore it under one lock so that concurrent
# loads with different limits do not see each other's value.
_PILLOW_LOCK = threading.Lock()
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError, TypeError)


def read_raster(path: Path, *, spacing: tuple[float, float] | None, limits: LoadLimits) -> Study:
    """Load a PNG, JPEG or TIFF as a 2-D grey image.

    Parameters
    ----------
    path
        The image file.
    spacing
        (row, column) pixel spacing in mm when the caller knows it; rasters carry none that
        can be trusted, so without it `Study.spacing` is None.
    limits
        ``max_pixel_bytes`` caps the decoded size.

    Returns
    -------
    Study
        kind "image"; 8-bit grey as uint8, 16-bit grey as uint16 (values unchanged), colour
        converted to grey with a warning.

    Raises
    ------
    NotAnImage
        Not a PNG, JPEG or TIFF (whatever its extension says).
    ImageTooLarge
        The declared size exceeds the cap (checked before decoding).
    CorruptFile
        Truncated or damaged image data.
    """
    notes: list[str] = []
    with _open_guarded(path, limits) as img:
        fmt = str(img.format)
        _check_budget(img, path, limits)
        if getattr(img, "n_frames", 1) > 1:
            notes.append("The file holds several images; only the first one is shown.")
        try:
            arr, mode_notes = _to_array(img)
        except _DECODE_ERRORS as exc:
            raise _damaged(path) from exc
    notes.extend(mode_notes)
    if spacing is not None:
        spacing = (float(spacing[0]), float(spacing[1]))
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise ParameterError("The pixel spacing must be two positive numbers of millimetres.")
    size = "x".join(str(n) for n in arr.shape)
    shown = "spacing unknown" if spacing is None else f"{spacing[0]:.3g} x {spacing[1]:.3g} mm"
    description = f"{fmt} image {size}, {shown}"
    return Study(
        pixels=arr,
        kind="image",
        modality=fmt,
        spacing=spacing,
        window=percentile_window(arr),
        description=description,
        sources=(path,),
        warnings=tuple(notes),
        series=(SeriesInfo("single-file", fmt, description, 1, arr.shape[0], arr.shape[1]),),
    )


@contextmanager
def _open_guarded(path: Path, limits: LoadLimits) -> Iterator[Image.Image]:
    """Open with Pillow (recognised formats only, bomb guard tied to `limits`), then close."""
    with _PILLOW_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max(1, limits.max_pixel_bytes // _BYTES_PER_PIXEL_IN_PILLOW)
        try:
            img = Image.open(path, formats=list(FORMATS))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise _too_large(path, limits) from exc
        except UnidentifiedImageError as exc:
            raise NotAnImage(
                f"{path.name} is not a PNG, JPEG or TIFF image (nor DICOM), so it cannot be "
                "opened.",
                path=path,
            ) from exc
        except _DECODE_ERRORS as exc:
            raise _damaged(path) from exc
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    try:
        yield img
    finally:
        img.close()


def _damaged(path: Path) -> CorruptFile:
    return CorruptFile(
        f"{path.name} is damaged or incomplete and cannot be opened; export the image again.",
        path=path,
    )


def _too_large(path: Path, limits: LoadLimits) -> ImageTooLarge:
    return ImageTooLarge(
        f"{path.name} declares an image larger than the "
        f"{limits.max_pixel_bytes / 1024**3:.1f} GiB limit; it was refused before decoding.",
        path=path,
    )


def _check_budget(img: Image.Image, path: Path, limits: LoadLimits) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptFile(f"{path.name} declares an empty image and cannot be opened.", path=path)
    if width * height * _BYTES_PER_PIXEL_IN_PILLOW > limits.max_pixel_bytes:
        raise _too_large(path, limits)


def _to_array(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Decode to a grey array in the smallest dtype that keeps the stored values."""
    notes: list[str] = []
    if img.format != "PNG" and img.getexif().get(0x0112, 1) in range(2, 9):
        # exif_transpose copies the image, so only call it when there is something to undo.
        img = ImageOps.exif_transpose(img)
        notes.append("The image was rotated or flipped as its EXIF orientation tag asks.")
    mode = img.mode
    if mode in ("L", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        arr = np.asarray(img)
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("=")), notes
    if mode == "1":
        return np.asarray(img.convert("L")), notes
    if mode == "I":
        arr = np.asarray(img)
        lo, hi = int(arr.min()), int(arr.max())
        for candidate in (np.uint8, np.uint16, np.int16, np.int32):
            info = np.iinfo(candidate)
            if info.min <= lo and hi <= info.max:
                return arr.astype(candidate), notes
        return arr, notes
    if mode in ("LA", "PA") or "A" in mode.replace("LAB", ""):
        notes.append("The image's transparency channel was ignored.")
    if mode == "LA":
        return np.asarray(img.getchannel("L")), notes
    notes.append(colour_warning("colour"))
    return to_grey(np.asarray(img.convert("RGB"))), notes
