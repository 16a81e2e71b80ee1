"""Turn a `Study` or a pixel array (+ DICOM header) into a de-identified case, ready to store.

One path for every source:

- DICOM-derived: a `Study` (or array) plus the pydicom `Dataset` it came from. Only the
  allow-listed header attributes are kept (DI-1); the series UID becomes an HMAC pseudonym
  (DI-2); `BurnedInAnnotation=YES` is refused and secondary captures are held (DI-3).
- Raster (PNG/JPEG/TIFF): only the decoded pixels are used and re-encoded (DI-4); the image is
  held until an expert confirms it shows no burned-in identifiers (DI-3).
- Synthetic (the phantom): pixels with no patient behind them.

Nothing of the source path, file name, `Study.description` or `Study.warnings` is kept (DI-5).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sos_core.errors import BurnedInAnnotation, ParameterError
from sos_core.imaging.study import Study
from sos_core.review.deid import (
    DeidHeader,
    apply_redactions,
    content_hash,
    deidentify_header,
    provenance,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

SourceKind = Literal["dicom", "raster", "synthetic"]
RASTER_MODALITIES = frozenset({"PNG", "JPEG", "TIFF"})
MAX_LABEL_CHARS = 120


@dataclass(frozen=True, slots=True)
class PreparedCase:
    """A de-identified 2-D image and what the store keeps about it (nothing else).

    identity: the source identity to pseudonymise (e.g. "dicom:<series uid>"), or None;
        transient, never stored, logged or shown.
    """

    pixels: np.ndarray
    content_hash: str
    modality: str
    pixel_spacing: tuple[float, float] | None
    source_kind: SourceKind
    source_label: str | None
    attributes: dict[str, Any]
    patient_sex: str | None
    patient_age_months: int | None
    deid: dict[str, Any]
    burn_in: Literal["clear", "hold", "confirmed", "redacted"]
    hold_reason: str | None
    confirmed_by: str | None
    identity: str | None = field(default=None, repr=False)


def prepare_case(
    source: Study | np.ndarray,
    *,
    dataset: Dataset | None = None,
    source_kind: SourceKind | None = None,
    modality: str | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    image: np.ndarray | None = None,
    source_label: str | None = None,
    retain_patient_characteristics: bool = False,
    burn_in_confirmed_by: str | None = None,
    redactions: Sequence[Sequence[float]] = (),
) -> PreparedCase:
    """De-identify one image; see `ReviewStore.ingest` for the parameters.

    Raises
    ------
    ParameterError
        The pixels are not one 2-D numeric image, or a required input is missing.
    BurnedInAnnotation
        The header says the pixels carry burned-in annotations and no expert confirmed them.
    """
    study = source if isinstance(source, Study) else None
    pixels = _pixels(source, image)
    kind = _kind(study, dataset, source_kind)
    header = _header(study, dataset, retain_patient_characteristics) if kind == "dicom" else None
    confirmed_by = _reviewer(burn_in_confirmed_by)
    if redactions and confirmed_by is None:
        raise ParameterError("Redaction boxes must come with the id of the expert who drew them.")
    if header is not None and header.burned_in == "yes" and confirmed_by is None:
        raise BurnedInAnnotation(
            "This image is marked as carrying burned-in annotations; an expert must confirm it "
            "shows no patient identifiers (or draw redaction boxes) before it can be stored."
        )
    if redactions:
        pixels = apply_redactions(pixels, redactions)
    pixels = np.ascontiguousarray(pixels)
    pixels.flags.writeable = False
    burn_in, hold_reason = _burn_in(kind, header, confirmed_by, bool(redactions))
    return PreparedCase(
        pixels=pixels,
        content_hash=content_hash(pixels),
        modality=_modality(modality, header, study, kind),
        pixel_spacing=_spacing(pixel_spacing, study, image, header),
        source_kind=kind,
        source_label=_label(source_label),
        attributes=dict(header.attributes) if header else {},
        patient_sex=header.patient_sex if header else None,
        patient_age_months=header.patient_age_months if header else None,
        deid=provenance(
            retain_patient_characteristics=retain_patient_characteristics and header is not None,
            redacted=bool(redactions),
        ),
        burn_in=burn_in,
        hold_reason=hold_reason,
        confirmed_by=confirmed_by,
        identity=header.identity if header else None,
    )


def _pixels(source: Study | np.ndarray, image: np.ndarray | None) -> np.ndarray:
    if image is not None:
        pixels = np.asarray(image)
    elif isinstance(source, Study):
        if source.pixels.ndim != 2:
            raise ParameterError(
                "A volume is stored as the 2-D image that was reviewed: pass that image "
                "(e.g. the mid-sagittal slice) as `image`."
            )
        pixels = source.pixels
    else:
        pixels = np.asarray(source)
    if pixels.ndim != 2 or pixels.dtype.kind not in "biuf" or min(pixels.shape) < 1:
        raise ParameterError("The review store takes one 2-D grey-scale image per case.")
    if pixels.dtype.kind == "b":
        pixels = pixels.astype(np.uint8)
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise ParameterError("The image holds invalid (NaN or infinite) pixel values.")
    return pixels


def _kind(study: Study | None, dataset: Dataset | None, given: SourceKind | None) -> SourceKind:
    if given is not None:
        if given not in ("dicom", "raster", "synthetic"):
            raise ParameterError("source_kind must be 'dicom', 'raster' or 'synthetic'.")
        return given
    if dataset is not None:
        return "dicom"
    if study is not None:
        return "raster" if study.modality.upper() in RASTER_MODALITIES else "dicom"
    raise ParameterError(
        "Say where a bare pixel array comes from: pass a DICOM dataset or source_kind."
    )


def _header(
    study: Study | None, dataset: Dataset | None, retain_patient_characteristics: bool
) -> DeidHeader:
    if dataset is None:
        dataset = _read_source_header(study)
    return deidentify_header(dataset, retain_patient_characteristics=retain_patient_characteristics)


def _read_source_header(study: Study | None) -> Dataset:
    if study is None or not study.sources:
        raise ParameterError(
            "A DICOM image needs its header for de-identification: pass the pydicom dataset."
        )
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(study.sources[0], stop_before_pixels=True)
    except (OSError, InvalidDicomError, ValueError, TypeError) as exc:
        # The path may hold a patient's name (DI-5): it is not put in the message.
        raise ParameterError(
            "The DICOM header needed for de-identification could not be read; open the study "
            "again and retry."
        ) from exc


def _burn_in(
    kind: SourceKind, header: DeidHeader | None, confirmed_by: str | None, redacted: bool
) -> tuple[Literal["clear", "hold", "confirmed", "redacted"], str | None]:
    if redacted:
        return "redacted", None
    reason = None
    if kind == "raster":
        reason = "raster image without a header"
    elif header is not None and header.burned_in == "yes":
        reason = "burned-in annotation"
    elif header is not None and header.secondary_capture:
        reason = "secondary capture"
    if reason is None:
        return "clear", None
    return ("confirmed", reason) if confirmed_by else ("hold", reason)


def _modality(
    given: str | None, header: DeidHeader | None, study: Study | None, kind: SourceKind
) -> str:
    from_header = header.modality if header else None
    for candidate in (given, from_header, study.modality if study else None):
        if candidate:
            text = str(candidate).strip().upper()
            if text.replace("_", "").replace(" ", "").isalnum() and len(text) <= 16:
                return text
    return "OT" if kind != "raster" else "RASTER"


def _spacing(
    given: tuple[float, float] | None,
    study: Study | None,
    image: np.ndarray | None,
    header: DeidHeader | None,
) -> tuple[float, float] | None:
    if given is not None:
        values = tuple(float(v) for v in given)
        if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
            raise ParameterError("Pixel spacing must be two positive numbers in mm (row, column).")
        return (values[0], values[1])
    if study is not None and image is None and study.spacing is not None:
        return (float(study.spacing[0]), float(study.spacing[1]))
    return header.pixel_spacing if header is not None else None


def _reviewer(value: str | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_LABEL_CHARS or not text.isprintable():
        raise ParameterError("A reviewer id must be 1 to 120 printable characters.")
    return text


def _label(value: str | None) -> str | None:
    """The user's own label for the source (DI-5: we never derive one from a path)."""
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > MAX_LABEL_CHARS or not text.isprintable():
        raise ParameterError("A source label must be at most 120 printable characters.")
    return text or None
