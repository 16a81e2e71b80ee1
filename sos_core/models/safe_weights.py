"""Checks on weight files made before any tensor is allocated (MW-3, MW-4).

`read_header` parses the safetensors header ourselves, from at most 100 MB of header bytes, and
proves that the tensors it declares tile the data section exactly; only then may the caller
read the data. `looks_like_pickle` recognises pickle-based files (torch `.pt` zip archives,
raw pickles of any protocol) by their bytes without unpickling them, so a renamed pickle is
refused with `UnsafeModelFile` and no code runs.

Format: https://github.com/huggingface/safetensors#format (8-byte little-endian header length
N, N bytes of UTF-8 JSON, then the raw little-endian tensor data).
"""

from __future__ import annotations

import io
import json
import logging
import pickletools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sos_core.errors import ModelFormatError, UnsafeModelFile

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 100 * 1024**2
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "I16": 2,
    "I32": 4,
    "I64": 8,
    "F16": 2,
    "BF16": 2,
    "F32": 4,
    "F64": 8,
}
# Suffixes of pickle-based formats (torch.save, joblib, HF pytorch_model.bin): never opened.
UNSAFE_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".bin"})
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format wraps a pickle
_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class TensorEntry:
    """One tensor of the header: byte range [begin, end) relative to the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    """A validated header. `entries` are sorted by offset and tile [0, data_length) exactly."""

    header_bytes: bytes
    entries: tuple[TensorEntry, ...]
    metadata: Mapping[str, str]
    data_offset: int
    data_length: int


def _bad(path: str | Path | None, why: str) -> ModelFormatError:
    name = Path(path).name if path is not None else "the weight file"
    return ModelFormatError(
        f"{name} is not a valid safetensors weight file ({why}); the model folder is damaged.",
        path=path,
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not allowed")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(name: str, spec: Any, path: str | Path | None) -> TensorEntry:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        raise _bad(path, f"tensor {name!r} is not described by dtype, shape and offsets")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise _bad(path, f"tensor {name!r} has an unknown dtype")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise _bad(path, f"tensor {name!r} has an invalid shape")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise _bad(path, f"tensor {name!r} has invalid offsets")
    numel = 1
    for d in shape:  # Python ints: no overflow, whatever the header claims
        numel *= d
    if offsets[1] - offsets[0] != numel * DTYPE_SIZES[dtype]:
        raise _bad(path, f"tensor {name!r} does not fill its byte range")
    return TensorEntry(name, dtype, tuple(shape), offsets[0], offsets[1])


def read_header(
    fh: BinaryIO, file_size: int, *, path: str | Path | None = None
) -> SafetensorsHeader:
    """Read and validate the header at the start of `fh` (positioned at 0).

    Reads 8 + N bytes only. Requires N ≤ 100 MB and ≤ the file size, a UTF-8 JSON object starting
    with '{' without duplicate keys, known dtypes, non-negative integer shapes, and offsets that
    are in bounds, contiguous, non-overlapping and cover the data section exactly.

    Raises
    ------
    ModelFormatError
        On any violation; nothing beyond the header has been read or allocated.
    """
    if file_size < 8:
        raise _bad(path, "the file is truncated")
    length = int.from_bytes(fh.read(8), "little", signed=False)
    if length > MAX_HEADER_BYTES:
        raise _bad(path, "the header claims to be larger than 100 MB")
    if 8 + length > file_size:
        raise _bad(path, "the file is truncated")
    raw = fh.read(length)
    if len(raw) != length:
        raise _bad(path, "the file is truncated")
    if not raw.startswith(b"{"):
        raise _bad(path, "the header is not a JSON object")
    try:
        parsed = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(path, "the header is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise _bad(path, "the header is not a JSON object")
    metadata = parsed.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _bad(path, "the metadata is not a map of texts")
    entries = sorted(
        (_entry(name, spec, path) for name, spec in parsed.items()), key=lambda e: (e.begin, e.end)
    )
    data_length = file_size - 8 - length
    position = 0
    for entry in entries:
        if entry.begin != position:
            raise _bad(path, "tensor byte ranges overlap or leave gaps")
        position = entry.end
    if position != data_length:
        raise _bad(path, "the tensors do not cover the data exactly, so it is truncated or padded")
    return SafetensorsHeader(raw, tuple(entries), dict(metadata), 8 + length, data_length)


def looks_like_pickle(head: bytes) -> bool:
    """True if `head` (the first bytes of a file) is a pickle or a torch zip archive.

    Only inspects opcodes with `pickletools.genops`, which decodes and never executes. Matches
    protocol 2+ pickles by their PROTO opcode, torch zip archives by the zip magic, and older
    protocols when a complete stream (up to STOP) decodes cleanly within the first 64 KiB.
    """
    if head.startswith(_ZIP_MAGIC):
        return True
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(head[:_SNIFF_BYTES])):
            if opcode.name == "STOP":
                return True
    except (ValueError, EOFError, OverflowError, UnicodeDecodeError, IndexError, TypeError):
        return False
    return False


def refuse_unsafe_file(path: str | Path) -> None:
    """Raise UnsafeModelFile if `path` is a pickle-based model file, by suffix or by content.

    For any import or open path that is handed a file: call this first. Reads 64 KiB at most.

    Raises
    ------
    UnsafeModelFile
        If the suffix is a pickle format (.pt, .pth, .ckpt, .pkl, .pickle, .joblib, .bin) or the
        bytes are a pickle or a torch zip archive, whatever the suffix.
    """
    p = Path(path)
    if p.suffix.lower() in UNSAFE_SUFFIXES:
        raise unsafe_file_error(p)
    try:
        with p.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return  # unreadable: the caller's own open reports it
    if _is_valid_safetensors_prefix(head):
        return
    if looks_like_pickle(head):
        raise unsafe_file_error(p)


def _is_valid_safetensors_prefix(head: bytes) -> bool:
    """Cheap pre-check: a header length that fits and JSON that starts with '{'."""
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= MAX_HEADER_BYTES and head[8:9] == b"{"


def unsafe_file_error(path: Path) -> UnsafeModelFile:
    """The UnsafeModelFile refusal for `path` (to raise)."""
    return UnsafeModelFile(
        f"{path.name} is a pickle-based model file, which could run code when opened; SOS Review "
        "only opens .safetensors weights with a model card.",
        path=path,
    )
