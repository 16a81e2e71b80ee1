"""Model folders on disk: `weights.safetensors` + `model.json` (DESIGN.md), never pickle.

Saving writes each file to a temporary file in the same folder, fsyncs it and swaps it in with
`os.replace`, weights first, so a folder with a `model.json` always holds the weights it names.
Loading (MW-2, MW-3, MW-4) checks, in order: pickle files refused by name or content; the card
parsed and validated; the safetensors header parsed by us (`safe_weights.read_header`) and
matched name by name, dtype by dtype, shape by shape against the architecture built on the
meta device (so no parameter memory is allocated for a lying card); only then are the data
bytes read, and the SHA-256 of exactly those bytes compared with the card before any tensor is
made from them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors.torch import save as safetensors_save
from torch import nn

from sos_core.durable import write_bytes_atomic
from sos_core.errors import (
    ModelError,
    ModelFormatError,
    ModelIntegrityError,
    ModelNotFound,
    ParameterError,
    UnknownNameError,
)
from sos_core.models.card import ModelCard
from sos_core.models.registry import create_model
from sos_core.models.safe_weights import (
    DTYPE_SIZES,
    SafetensorsHeader,
    looks_like_pickle,
    read_header,
    refuse_unsafe_file,
    unsafe_file_error,
)

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "weights.safetensors"
CARD_NAME = "model.json"
MAX_CARD_BYTES = 1024**2
MAX_WEIGHTS_BYTES = 2 * 1024**3

_TORCH_DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
}
_DTYPE_NAMES = {v: k for k, v in _TORCH_DTYPES.items()}

Layout = dict[str, tuple[str, tuple[int, ...]]]


def _layout_of(state: dict[str, torch.Tensor]) -> Layout:
    return {k: (_DTYPE_NAMES.get(v.dtype, str(v.dtype)), tuple(v.shape)) for k, v in state.items()}


def expected_layout(card: ModelCard, *, path: str | Path | None = None) -> Layout:
    """Tensor names → (safetensors dtype, shape) of the card's architecture.

    Built on the CPU, not on `meta`: the first meta tensor imports torch's meta registrations
    and decompositions (~1.5 s of `sos predict` start-up), while our networks are a few MB.

    Raises
    ------
    ModelFormatError
        If the architecture is unknown or its kwargs are invalid.
    """
    try:
        model = create_model(card.architecture, **card.kwargs)
    except UnknownNameError as exc:
        raise ModelFormatError(
            f"the model card names an architecture this version does not know "
            f"({card.architecture!r}).",
            path=path,
        ) from exc
    except (ParameterError, TypeError, ValueError) as exc:
        raise ModelFormatError(
            "the model card's architecture settings are invalid for this version.", path=path
        ) from exc
    return _layout_of(model.state_dict())


def _compare(found: Layout, expected: Layout, path: str | Path | None) -> None:
    name = Path(path).name if path is not None else WEIGHTS_NAME
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise ModelFormatError(
            f"{name} does not match the architecture in the card ({what} tensor).", path=path
        )
    for key, (dtype, shape) in expected.items():
        if found[key] != (dtype, shape):
            raise ModelFormatError(
                f"{name} does not match the architecture in the card (tensor {key!r} is "
                f"{found[key][0]} {list(found[key][1])}, expected {dtype} {list(shape)}).",
                path=path,
            )


def save_model(
    folder: str | Path, model: nn.Module, card: ModelCard, *, overwrite: bool = False
) -> ModelCard:
    """Write `model` and `card` as a model folder; returns the card with `weights_sha256` set.

    The card's architecture and kwargs must rebuild a network with exactly the model's tensor
    names, dtypes and shapes, so that what is saved can be loaded.

    Raises
    ------
    ModelError
        If the folder already holds a model and `overwrite` is False (versions are immutable).
    ModelFormatError
        If the card does not describe the model.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite and ((out / CARD_NAME).exists() or (out / WEIGHTS_NAME).exists()):
        raise ModelError(
            f"the folder {out.name} already holds a model; a saved version is never overwritten.",
            path=out,
        )
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _compare(_layout_of(state), expected_layout(card, path=out), out / WEIGHTS_NAME)
    blob = safetensors_save(state, metadata={"format": "pt"})
    digest = hashlib.sha256(blob).hexdigest()
    write_bytes_atomic(out / WEIGHTS_NAME, blob)
    final = card.replace(weights_sha256=digest)
    write_bytes_atomic(out / CARD_NAME, final.to_json().encode("utf-8"))
    logger.info("saved model %s version %s (%d bytes)", final.name, final.version, len(blob))
    return final


def read_card(folder: str | Path) -> ModelCard:
    """The validated card of a model folder, without touching the weights.

    Raises
    ------
    ModelNotFound
        If the folder or its model.json does not exist.
    ModelFormatError
        If model.json is too large, not JSON, or not a valid card.
    """
    path = Path(folder) / CARD_NAME
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError as exc:
        raise ModelNotFound(
            f"the model folder {Path(folder).name} has no {CARD_NAME}.", path=path
        ) from exc
    except OSError as exc:
        raise ModelFormatError(f"{CARD_NAME} could not be read.", path=path) from exc
    if len(raw) > MAX_CARD_BYTES:
        raise ModelFormatError(f"{CARD_NAME} is larger than a model card can be.", path=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"{CARD_NAME} is not a text file.", path=path) from exc
    return ModelCard.from_json(text, path=path)


def _sha256_stream(fh: BinaryIO) -> str:
    fh.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _integrity_error(path: Path) -> ModelIntegrityError:
    return ModelIntegrityError(
        f"{path.name} does not match the checksum in its model card; the files were changed or "
        "damaged, so the model is not used.",
        path=path,
    )


def _read_checked(weights: Path, card: ModelCard) -> tuple[SafetensorsHeader, bytearray]:
    """Validated header and data bytes whose SHA-256 matched the card."""
    with weights.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_WEIGHTS_BYTES:
            raise ModelFormatError(f"{weights.name} is larger than 2 GiB.", path=weights)
        try:
            header = read_header(fh, size, path=weights)
            _compare(
                {e.name: (e.dtype, e.shape) for e in header.entries},
                expected_layout(card, path=weights),
                weights,
            )
        except ModelFormatError as exc:
            fh.seek(0)
            if looks_like_pickle(fh.read(64 * 1024)):
                raise unsafe_file_error(weights) from None  # never name the pickle's content
            if _sha256_stream(fh) != card.weights_sha256:
                raise _integrity_error(weights) from exc  # changed after saving, not malformed
            raise
        data = bytearray(header.data_length)
        if fh.readinto(data) != header.data_length:  # the file shrank since fstat
            raise _integrity_error(weights)
    digest = hashlib.sha256()
    digest.update((header.data_offset - 8).to_bytes(8, "little"))
    digest.update(header.header_bytes)
    digest.update(data)
    if digest.hexdigest() != card.weights_sha256:
        raise _integrity_error(weights)
    return header, data


def load_model(
    folder: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelCard]:
    """Load a model folder safely; the model comes back in eval mode on `device`.

    Parameters
    ----------
    folder
        A folder with `weights.safetensors` and `model.json`. A pickle-based file (.pt, .pth,
        .ckpt, or a pickle under any name) given here instead is refused, never opened.
    device
        Where the weights go (chosen once by the caller, see `sos_core.device`).

    Raises
    ------
    UnsafeModelFile
        A pickle-based file was offered (MW-3); no code ran.
    ModelNotFound
        The folder, card or weight file does not exist.
    ModelIntegrityError
        The weights' SHA-256 differs from the card (MW-2); no tensor was made.
    ModelFormatError
        The card or the safetensors header is malformed, or the tensors do not match the
        architecture exactly (MW-4).
    """
    path = Path(folder)
    if path.is_file():
        refuse_unsafe_file(path)
        raise ModelFormatError(
            f"{path.name} is a single file; a model is a folder holding {WEIGHTS_NAME} and "
            f"{CARD_NAME}.",
            path=path,
        )
    if not path.is_dir():
        raise ModelNotFound(f"the model folder {path.name} does not exist.", path=path)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        for other in sorted(path.iterdir()):  # a lone model.pt here gets the specific refusal
            if other.is_file():
                refuse_unsafe_file(other)
        raise ModelNotFound(f"the model folder {path.name} has no {WEIGHTS_NAME}.", path=weights)
    card = read_card(path)
    if not card.weights_sha256:
        raise ModelIntegrityError(
            f"the model card in {path.name} has no weights checksum, so the model is not used.",
            path=path / CARD_NAME,
        )
    if sys.byteorder != "little":
        raise ModelFormatError("weight files can only be read on little-endian machines.")
    header, data = _read_checked(weights, card)
    state: dict[str, torch.Tensor] = {}
    for e in header.entries:
        numel = (e.end - e.begin) // DTYPE_SIZES[e.dtype]
        dtype = _TORCH_DTYPES[e.dtype]
        if numel == 0:
            state[e.name] = torch.empty(e.shape, dtype=dtype)
        else:
            flat = torch.frombuffer(data, dtype=dtype, count=numel, offset=e.begin)
            state[e.name] = flat.reshape(e.shape).clone()  # clone: own, aligned memory
    model = create_model(card.architecture, **card.kwargs)
    model.load_state_dict(state, strict=True)
    model.eval()
    logger.info("loaded model %s version %s", card.name, card.version)
    return model.to(device), card
