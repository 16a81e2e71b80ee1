"""`ModelCard`: everything about a model except its weights, serialised to `model.json`.

Follows timm's `PretrainedCfg` (architecture + kwargs, input size, channels, preprocessing,
labels, licence, origin) and adds what a clinic needs to trust a file: the stage scheme, the
calibration temperature, the SHA-256 of the weights, a training-data summary, validation
metrics, version lineage and intended use. No torch import here, so the review store and the
CLI can read cards cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sos_core.errors import ModelFormatError

logger = logging.getLogger(__name__)

CARD_FORMAT = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


def utc_now_iso() -> str:
    """The current time as ISO 8601 UTC with seconds, e.g. '2026-11-26T10:00:00+00:00'."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _freeze(value: Any) -> Any:
    """Read-only view of JSON-like data (dict → MappingProxyType, list → tuple)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Plain JSON data back from `_freeze`d data."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ModelCard:
    """The description of one saved model version (`model.json`).

    name: human name ("sos-student"). architecture / kwargs: registry name and the keyword
    arguments that rebuild the network (`create_model(architecture, **kwargs)`).
    input_size: model input (height, width) in pixels. in_chans: input channels.
    modality_input_sizes: modality → (height, width) for the modalities a student reads at
    another size than `input_size` (empty: every image at `input_size`); see `input_size_for`.
    preprocessing: how an image becomes the input (id, intensity mapping, resize), a JSON dict.
    stage_scheme / stage_names: scheme id and the stage names in output order.
    temperature: calibration temperature dividing the logits (1.0 = uncalibrated).
    weights_sha256: lowercase hex SHA-256 of `weights.safetensors`; filled in by `save_model`.
    training_data / metrics: JSON dicts (data summary; validation metrics).
    version / parent_version: this version and the one it was retrained from (None at origin).
    created: ISO 8601 UTC time of creation. modalities: input kinds it was trained on.
    intended_use / licence / origin: plain-text statements shown to the user.
    Mappings are read-only views; `to_dict` returns plain, JSON-able copies.
    """

    name: str
    architecture: str
    input_size: tuple[int, int]
    stage_scheme: str
    stage_names: tuple[str, ...]
    version: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    in_chans: int = 1
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    weights_sha256: str = ""
    training_data: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=utc_now_iso)
    parent_version: str | None = None
    modalities: tuple[str, ...] = ()
    intended_use: str = ""
    licence: str = ""
    origin: str = ""
    modality_input_sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    format_version: int = CARD_FORMAT

    def __post_init__(self) -> None:
        for name in ("kwargs", "preprocessing", "training_data", "metrics", "modality_input_sizes"):
            object.__setattr__(self, name, _freeze(getattr(self, name)))
        for name in ("input_size", "stage_names", "modalities"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = self.problems()
        if problems:
            raise ModelFormatError(f"the model card is invalid: {problems[0]}")

    @property
    def num_classes(self) -> int:
        return len(self.stage_names)

    def input_size_for(self, modality: str | None) -> int:
        """The square input size an image of `modality` is read at ("slice", "ceph"; None or
        any other: `input_size`)."""
        size = self.modality_input_sizes.get(modality or "", self.input_size)
        return int(size[0])

    def input_sizes(self) -> tuple[int, ...]:
        """Every input size this model reads at, the default first."""
        extra = {int(s[0]) for s in self.modality_input_sizes.values()} - {self.input_size[0]}
        return (int(self.input_size[0]), *sorted(extra))

    def problems(self) -> list[str]:
        """Every reason this card cannot be used, as short phrases (empty when valid)."""
        out: list[str] = []
        for name in ("name", "architecture", "stage_scheme", "version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                out.append(f"{name} must be a non-empty text")
        if len(self.input_size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 4096
            for v in self.input_size
        ):
            out.append("input_size must be two whole numbers of pixels between 8 and 4096")
        for modality, size in self.modality_input_sizes.items():
            if self.modalities and modality not in self.modalities:
                out.append(f"modality_input_sizes names {modality!r}, not one of the modalities")
            if not _is_square_size(size):
                out.append("modality_input_sizes must give square sizes of 8 to 4096 pixels")
        if not isinstance(self.in_chans, int) or not 1 <= self.in_chans <= 4:
            out.append("in_chans must be 1 to 4")
        if len(self.stage_names) < 2 or not all(isinstance(s, str) and s for s in self.stage_names):
            out.append("stage_names must list at least two named stages")
        if "num_classes" in self.kwargs and self.kwargs["num_classes"] != len(self.stage_names):
            out.append("kwargs.num_classes must equal the number of stage names")
        if "in_chans" in self.kwargs and self.kwargs["in_chans"] != self.in_chans:
            out.append("kwargs.in_chans must equal in_chans")
        temp = self.temperature
        if not isinstance(temp, int | float) or not math.isfinite(temp) or not 0.01 <= temp <= 100:
            out.append("temperature must be a number between 0.01 and 100")
        if self.weights_sha256 and not _SHA256.fullmatch(str(self.weights_sha256)):
            out.append("weights_sha256 must be 64 lowercase hexadecimal digits")
        try:
            offset = datetime.fromisoformat(str(self.created)).utcoffset()
        except ValueError:
            offset = None
        if offset is None or offset.total_seconds() != 0:
            out.append("created must be an ISO 8601 time in UTC")
        if self.parent_version is not None and not isinstance(self.parent_version, str):
            out.append("parent_version must be a text or null")
        if not all(isinstance(m, str) for m in self.modalities):
            out.append("modalities must be texts")
        for name in ("intended_use", "licence", "origin"):
            if not isinstance(getattr(self, name), str):
                out.append(f"{name} must be a text")
        if self.format_version != CARD_FORMAT:
            out.append(f"format_version {self.format_version!r} is not supported")
        return out

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, in field order. An empty `modality_input_sizes` is left out, so
        that a card without one stays readable by versions from before the field."""
        out = {f.name: _thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if not out["modality_input_sizes"]:
            del out["modality_input_sizes"]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, path: str | Path | None = None) -> ModelCard:
        """Build and validate a card from parsed JSON.

        Raises
        ------
        ModelFormatError
            If a field is missing, unknown, of the wrong type or out of range.
        """
        if not isinstance(data, dict):
            raise ModelFormatError("the model card is not a JSON object.", path=path)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelFormatError(
                f"the model card has unknown fields ({', '.join(unknown)}); it may come from a "
                "newer version of SOS Review.",
                path=path,
            )
        fields = dict(data)
        for name in ("kwargs", "preprocessing", "training_data", "metrics", "modality_input_sizes"):
            if name in fields and not isinstance(fields[name], dict):
                raise ModelFormatError(f"the model card field {name} must be an object.", path=path)
        for name in ("input_size", "stage_names", "modalities"):
            if name in fields and not isinstance(fields[name], list | tuple):
                raise ModelFormatError(f"the model card field {name} must be a list.", path=path)
        try:
            return cls(**fields)
        except TypeError as exc:  # a required field is missing
            raise ModelFormatError(
                f"the model card is incomplete: {exc}.".replace("__init__() ", ""), path=path
            ) from exc
        except ModelFormatError as exc:
            raise ModelFormatError(str(exc), path=path) from exc

    @classmethod
    def from_json(cls, text: str, *, path: str | Path | None = None) -> ModelCard:
        """Parse `model.json` text. Raises ModelFormatError on invalid JSON or content."""
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            name = Path(path).name if path is not None else "model.json"
            raise ModelFormatError(
                f"the model card {name} is not valid JSON; the model folder is damaged.",
                path=path,
            ) from exc
        return cls.from_dict(data, path=path)


def _is_square_size(size: Any) -> bool:
    return (
        isinstance(size, tuple)
        and len(size) == 2
        and size[0] == size[1]
        and all(isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 4096 for v in size)
    )


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not allowed in a model card")
