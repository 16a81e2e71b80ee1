"""One DICOM file (single- or multi-frame) -> `Study`.

Order of work, so that a hostile file costs almost nothing (DC-2):

1. `guards.prescan_element_lengths`: refuse non-DICOM input and element lengths that run past
   the end of the file, reading no value.
2. Read the header with ``stop_before_pixels=True`` and run `guards.check_pixel_budget`.
3. Check that a decoder for the transfer syntax is installed (`UnsupportedEncoding`, DC-4).
4. Read and decode the pixels, convert them with `pixels.convert_pixels`, derive the geometry.

Everything pydicom raises on damaged data is turned into `CorruptFile` here, with the cause kept;
`open_study` wraps whatever else slips through (DC-1).
"""

from __future__ import annotations

import hashlib
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from sos_core.errors import CorruptFile, NotAnImage, UnsupportedEncoding
from sos_core.imaging.dicom_geometry import Geometry, frame_geometry
from sos_core.imaging.guards import check_pixel_budget, open_bounded, prescan_element_lengths
from sos_core.imaging.limits import LoadLimits
from sos_core.imaging.pixels import (
    conversion_warnings,
    convert_pixels,
    default_window,
    modality_transform,
    smallest_exact_dtype,
)
from sos_core.imaging.study import SeriesInfo, Study

logger = logging.getLogger(__name__)

# Failures pydicom and its plugins raise on malformed data; anything else is left to
# open_study's boundary so that programming errors are not disguised as damaged files.
_DATA_ERRORS = (
    AttributeError,
    EOFError,
    IndexError,
    InvalidDicomError,
    KeyError,
    NotImplementedError,
    OverflowError,
    RuntimeError,
    TypeError,
    ValueError,
    struct.error,
    zlib.error,
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# A PackBits replicate run (2 bytes) decodes to at most 128 bytes (PS3.5 G.3.1), so RLE data
# can never expand more than 64-fold; beyond that the header lies and the decoder would
# allocate the declared size for nothing.
_RLE_MAX_RATIO = 64

# Transfer syntax UID prefix -> pip packages that give pydicom a decoder for it.
_PLUGIN_HINTS = (
    ("1.2.840.10008.1.2.4.5", "pylibjpeg pylibjpeg-libjpeg"),  # JPEG baseline / extended
    ("1.2.840.10008.1.2.4.57", "pylibjpeg pylibjpeg-libjpeg"),  # JPEG lossless
    ("1.2.840.10008.1.2.4.70", "pylibjpeg pylibjpeg-libjpeg"),  # JPEG lossless SV1
    ("1.2.840.10008.1.2.4.8", "pylibjpeg pylibjpeg-libjpeg"),  # JPEG-LS
    ("1.2.840.10008.1.2.4.9", "pylibjpeg pylibjpeg-openjpeg"),  # JPEG 2000
    ("1.2.840.10008.1.2.4.20", "pylibjpeg pylibjpeg-openjpeg"),  # HTJ2K
    ("1.2.840.10008.1.2.5", "pylibjpeg pylibjpeg-rle"),  # RLE
)


def read_dicom_file(path: Path, *, limits: LoadLimits) -> Study:
    """Load one DICOM file as a 2-D image, a volume or a frame stack.

    Parameters
    ----------
    path
        The file.
    limits
        Caps checked before any pixel is decoded.

    Returns
    -------
    Study
        Pixels in modality units (MONOCHROME1 inverted, colour turned to grey), spacing in mm,
        orientation in patient coordinates where the file records it.

    Raises
    ------
    NotAnImage
        Not DICOM, or DICOM without pixel data (RT plan, structured report, ...).
    CorruptFile
        Truncated or internally inconsistent.
    ImageTooLarge
        The declared image exceeds ``limits.max_pixel_bytes``.
    UnsupportedEncoding
        No installed decoder handles the transfer syntax.
    """
    has_pixels = prescan_element_lengths(path, limits)
    header = _read(path, stop_before_pixels=True)
    if has_pixels is False or "Rows" not in header or "Columns" not in header:
        if has_pixels:
            raise _corrupt(path)
        raise NotAnImage(
            f"{path.name} is a DICOM object without an image (for example a report or a "
            "treatment plan), so there is nothing to show.",
            path=path,
        )
    declared = check_pixel_budget(header, path, limits)
    ds = _read(path, stop_before_pixels=False)
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise NotAnImage(
            f"{path.name} is a DICOM object without an image, so there is nothing to show.",
            path=path,
        )
    _ensure_decoder(ds, path)
    if ds.file_meta.TransferSyntaxUID == RLELossless and declared > _RLE_MAX_RATIO * len(
        ds.get("PixelData") or b""
    ):
        raise _corrupt(path)  # more pixels declared than the RLE bytes can possibly hold
    raw = _decode(ds, path)
    try:
        return _build_study(path, ds, raw)
    except _DATA_ERRORS as exc:  # e.g. a palette LUT or functional group that makes no sense
        raise _corrupt(path) from exc


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    compressed = bool(getattr(ds.file_meta.get("TransferSyntaxUID"), "is_compressed", False))
    try:
        return ds.pixel_array
    except _DATA_ERRORS as exc:
        raise (_decode_failed(ds, path) if compressed else _corrupt(path)) from exc
    except BaseException as exc:
        # Rust decoders (pylibjpeg-rle) turn a panic on malformed data into pyo3's
        # PanicException, which derives from BaseException; everything else is re-raised.
        if type(exc).__name__ != "PanicException":
            raise
        raise _decode_failed(ds, path) from exc


def _read(path: Path, *, stop_before_pixels: bool) -> Dataset:
    # force=True: the prescan has already refused files that do not start like DICOM, and
    # files without the 128-byte preamble (no_meta) are still valid DICOM.
    try:
        with open_bounded(path) as fh:
            return dcmread(fh, force=True, stop_before_pixels=stop_before_pixels)
    except _DATA_ERRORS as exc:
        raise _corrupt(path) from exc
    except OSError as exc:
        # pydicom reports damaged structure ("No tag to read at file position ...") as a bare
        # OSError; a real disk error carries an errno and is left to open_study.
        if exc.errno is not None:
            raise
        raise _corrupt(path) from exc


def _corrupt(path: Path) -> CorruptFile:
    return CorruptFile(
        f"{path.name} is damaged or incomplete and cannot be opened; copy the file again from "
        "its source.",
        path=path,
    )


def _ensure_decoder(ds: Dataset, path: Path) -> None:
    """Raise `UnsupportedEncoding` unless an installed plugin decodes this transfer syntax."""
    meta = ds.file_meta
    if not meta.get("TransferSyntaxUID"):
        # No meta (or no UID in it): the pixels can only be uncompressed, in the encoding
        # pydicom detected while reading; compressed pixels cannot be decoded blindly.
        element = ds[next(k for k in _PIXEL_KEYWORDS if k in ds)]
        if element.is_undefined_length:
            raise UnsupportedEncoding(
                f"{path.name} holds compressed pixels but does not say how they were "
                "compressed, so they cannot be decoded.",
                path=path,
            )
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else (ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian)
        )
    uid = UID(str(meta.TransferSyntaxUID))
    name = uid.name if uid.is_transfer_syntax else "an unknown compression"
    hint = next((pkg for prefix, pkg in _PLUGIN_HINTS if uid.startswith(prefix)), "")
    try:
        available = get_decoder(uid).is_available
    except NotImplementedError:
        available, hint = False, ""
    if available:
        return
    if hint:
        message = (
            f"{path.name} is compressed with {name}, which needs a decoder that is not "
            f"installed; install it with 'pip install {hint}' and open the file again."
        )
    else:
        message = (
            f"{path.name} is compressed with {name}, which SOS Review cannot decode; export "
            "it from the source system uncompressed or as JPEG 2000."
        )
    raise UnsupportedEncoding(
        message,
        path=path,
        transfer_syntax_name=name,
        transfer_syntax_uid=str(uid),
        plugin_hint=hint,
    )


def _decode_failed(ds: Dataset, path: Path) -> UnsupportedEncoding:
    uid = UID(str(ds.file_meta.TransferSyntaxUID))
    return UnsupportedEncoding(
        f"{path.name}'s compressed pixels could not be decoded by the installed decoders; the "
        "file may be damaged, or installing 'python-gdcm' may help.",
        path=path,
        transfer_syntax_name=uid.name,
        transfer_syntax_uid=str(uid),
        plugin_hint="python-gdcm",
    )


def _build_study(path: Path, ds: Dataset, raw: np.ndarray) -> Study:
    samples = int(ds.get("SamplesPerPixel") or 1)
    frames = int(ds.get("NumberOfFrames") or 1)
    colour = samples > 1 or str(ds.get("PhotometricInterpretation", "")).strip() == (
        "PALETTE COLOR"
    )
    if frames > 1 and raw.ndim == (3 if samples > 1 else 2):
        raw = raw[np.newaxis]  # pydicom drops the frame axis when only one frame decoded
    n_frames = raw.shape[0] if raw.ndim == (4 if samples > 1 else 3) else 1
    geometry = frame_geometry(ds, n_frames)
    pixels, warnings = _convert(raw, ds, geometry, n_frames, colour=colour)
    warnings += geometry.warnings
    if str(ds.get("LossyImageCompression", "")).strip() == "01":
        warnings += ("The image was compressed with loss; fine detail may be altered.",)
    if not colour and ds.get("VOILUTSequence") and not ds.get("WindowWidth"):
        warnings += ("The display window approximates the file's VOI lookup table.",)
    window = default_window(None if colour else ds, pixels)
    modality = _modality(ds)
    description = _describe(modality, geometry.kind, pixels.shape, geometry.spacing)
    return Study(
        pixels=pixels,
        kind=geometry.kind,
        modality=modality,
        spacing=geometry.spacing,
        direction=geometry.direction,
        origin=geometry.origin,
        window=window,
        description=description,
        sources=(path,),
        warnings=warnings,
        series=(_series_info(ds, modality, description, pixels.shape),),
    )


def _convert(
    raw: np.ndarray, ds: Dataset, geometry: Geometry, n_frames: int, *, colour: bool
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Convert pixels, frame by frame when frames are reordered or rescaled differently."""
    per_frame = n_frames > 1 and not colour and _rescale_varies(ds, n_frames)
    if geometry.order is None and not per_frame:
        return convert_pixels(raw, ds)
    order = geometry.order if geometry.order is not None else tuple(range(n_frames))
    if colour:
        pixels, warnings = convert_pixels(raw, ds)
        return np.ascontiguousarray(pixels[list(order)]), warnings
    transforms = [modality_transform(ds, i if per_frame else None) for i in range(n_frames)]
    lo, hi = np.inf, -np.inf
    for i, t in enumerate(transforms):
        frame_lo, frame_hi = t.output_range(float(raw[i].min()), float(raw[i].max()))
        lo, hi = min(lo, frame_lo), max(hi, frame_hi)
    dtype = smallest_exact_dtype(
        lo,
        hi,
        integral=all(t.integral for t in transforms),
        signed=any(t.signed for t in transforms),
    )
    out = np.empty(raw.shape, dtype=dtype)
    for dst, src in enumerate(order):
        transforms[src].apply(raw[src], dtype=dtype, out=out[dst])
    return out, conversion_warnings(ds)


def _rescale_varies(ds: Dataset, n_frames: int) -> bool:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame or not per_frame[0].get("PixelValueTransformationSequence"):
        return False
    first = modality_transform(ds, 0)
    return any(modality_transform(ds, i) != first for i in range(1, n_frames))


def _modality(ds: Dataset) -> str:
    value = str(ds.get("Modality", "") or "").strip().upper()
    return value if value.isalnum() and len(value) <= 16 else "OT"


def _describe(
    modality: str, kind: str, shape: tuple[int, ...], spacing: tuple[float, ...] | None
) -> str:
    """Short de-identified description: modality, kind, shape and spacing only."""
    size = "x".join(str(n) for n in shape)
    if spacing is None:
        return f"{modality} {kind} {size}, spacing unknown"
    shown = [f"{s:.3g}" for s in spacing if s > 0]
    return f"{modality} {kind} {size}, {' x '.join(shown)} mm"


def _series_info(
    ds: Dataset, modality: str, description: str, shape: tuple[int, ...]
) -> SeriesInfo:
    # The key is a digest, never the UID itself (DI-2).
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    key = hashlib.sha256(uid.encode()).hexdigest()[:16] if uid else "single-file"
    return SeriesInfo(
        key=key,
        modality=modality,
        description=description,
        n_files=1,
        rows=int(shape[-2]),
        columns=int(shape[-1]),
    )
