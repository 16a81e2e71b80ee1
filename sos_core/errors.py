"""The one error hierarchy of SOS Review.

Every error is told apart by its type, inherits the matching built-in so generic callers still
work, carries the data a caller needs (`path`, `plugin_hint`, ...), and its message is one
sentence a clinician can act on. Messages never contain DICOM header values (DI-7) and name
files by their base name only (DI-5: folder names often hold patient names).
"""

from __future__ import annotations

from pathlib import Path


def _name(path: str | Path | None) -> str:
    return Path(path).name if path is not None else "the input"


class SosError(Exception):
    """Base of every error SOS Review raises on purpose."""


# --- imaging -------------------------------------------------------------------------------


class ImagingError(SosError):
    """A file or folder could not be turned into a Study."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class StudyNotFound(ImagingError, FileNotFoundError):
    """The path does not exist or cannot be read."""


class NotAnImage(ImagingError, ValueError):
    """The file is readable but holds no image (e.g. an RT plan, a text file, a GIF)."""


class NoImagesFound(ImagingError, FileNotFoundError):
    """A folder was scanned and holds no image we can open."""


class CorruptFile(ImagingError, ValueError):
    """The file is truncated or internally inconsistent."""


class UnsupportedEncoding(ImagingError, ValueError):
    """The pixel data is compressed in a way no installed decoder handles."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        transfer_syntax_name: str = "",
        transfer_syntax_uid: str = "",
        plugin_hint: str = "",
    ) -> None:
        super().__init__(message, path=path)
        self.transfer_syntax_name = transfer_syntax_name
        self.transfer_syntax_uid = transfer_syntax_uid
        self.plugin_hint = plugin_hint


class ImageTooLarge(ImagingError, ValueError):
    """The image would need more memory than the configured cap; refused before decoding."""


class InconsistentSeries(ImagingError, ValueError):
    """The slices of a series cannot form one volume (mixed sizes or orientations, ...)."""


class SeriesNotChosen(ImagingError, LookupError):
    """A folder holds several series and the caller must say which one to open."""

    def __init__(self, message: str, *, path: str | Path | None = None, series: tuple = ()) -> None:
        super().__init__(message, path=path)
        self.series = series


class DecoderCrashed(ImagingError, RuntimeError):
    """The pixel decoder process died or ran out of its memory or time budget."""


# --- models ----------------------------------------------------------------------------------


class ModelError(SosError):
    """A model folder could not be used."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class ModelNotFound(ModelError, FileNotFoundError):
    """The model folder, its card or its weight file does not exist."""


class ModelIntegrityError(ModelError, ValueError):
    """The weights' SHA-256 does not match the model card: the files were changed or damaged."""


class ModelFormatError(ModelError, ValueError):
    """The model card or weight file is malformed or does not match the architecture."""


class UnsafeModelFile(ModelError, ValueError):
    """A pickle-based file (.pt, .pth, .ckpt, a renamed pickle) was offered; it is never run."""


class OutsideChangeEnvelope(ModelError, ValueError):
    """A retrained model changes more than weights and calibration (RG-6); see `.problems`."""

    def __init__(
        self, message: str, *, path: str | Path | None = None, problems: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, path=path)
        self.problems = problems


class PromotionRefused(ModelError, ValueError):
    """A model version may not become active (it failed the promotion gate or is not a student)."""


# --- parameters and configuration ------------------------------------------------------------


class ParameterError(SosError, ValueError):
    """A parameter given by the user or a config file is out of range or unknown."""


class UnknownNameError(SosError, KeyError):
    """A registry was asked for a name it does not hold (model, loss, CAM method, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --- review store ----------------------------------------------------------------------------


class StoreError(SosError):
    """The review store could not be opened or could not do what was asked."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class NotAStore(StoreError, ValueError):
    """The file is not an SOS Review store (another program's file or database); left untouched."""


class CorruptStore(StoreError, ValueError):
    """The store file is truncated or damaged; left untouched."""


class StoreTooNew(StoreError, RuntimeError):
    """The store was written by a newer SOS Review; this version refuses to change it."""


class StoreOnNetworkDrive(StoreError, OSError):
    """The store folder is on a network or remote file system, where SQLite can lose data."""


class StoreBusy(StoreError, TimeoutError):
    """Another window or process kept the store locked for longer than the retry budget."""


class StoreConfigError(StoreError, RuntimeError):
    """SQLite did not accept a setting the store's durability depends on (WAL, FULL sync, ...)."""


class StoreSecretMissing(StoreError, FileNotFoundError):
    """The store's pseudonymisation key file beside the database is missing or does not match."""


class CaseNotFound(StoreError, LookupError):
    """No case (or label, or prediction) with the given id exists in the store."""


class LabelRejected(StoreError, ValueError):
    """A label was refused because one of its fields is missing or out of range."""


class BurnedInAnnotation(StoreError, ValueError):
    """The image may show burned-in patient identifiers and needs an expert's confirmation."""


class BlobCorrupt(StoreError, ValueError):
    """A stored pixel file does not match its SHA-256 name: the disk content was damaged."""


class LockedSetViolation(StoreError, ValueError):
    """A training case belongs to the locked validation set (by case id or pixel content, RG-4)."""

    def __init__(
        self, message: str, *, path: str | Path | None = None, case_ids: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, path=path)
        self.case_ids = case_ids


__all__ = [
    "BlobCorrupt",
    "BurnedInAnnotation",
    "CaseNotFound",
    "CorruptFile",
    "CorruptStore",
    "DecoderCrashed",
    "ImageTooLarge",
    "ImagingError",
    "InconsistentSeries",
    "LabelRejected",
    "LockedSetViolation",
    "ModelError",
    "ModelFormatError",
    "ModelIntegrityError",
    "ModelNotFound",
    "NoImagesFound",
    "NotAStore",
    "NotAnImage",
    "OutsideChangeEnvelope",
    "ParameterError",
    "PromotionRefused",
    "SeriesNotChosen",
    "SosError",
    "StoreBusy",
    "StoreConfigError",
    "StoreError",
    "StoreOnNetworkDrive",
    "StoreSecretMissing",
    "StoreTooNew",
    "StudyNotFound",
    "UnknownNameError",
    "UnsafeModelFile",
    "UnsupportedEncoding",
]
