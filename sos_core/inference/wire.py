"""Messages between the app and its prediction process: JSON plus raw array bytes, no pickle.

A message is a JSON-able value in which numpy arrays may appear anywhere; each array travels as
raw bytes after the JSON and is referenced there as {"__array__": i}. Frame: 4-byte big-endian
length of the JSON header, the header ({"body": ..., "arrays": [[dtype, shape], ...]}), then the
arrays' bytes in order. Nothing read here can run code (MW-1); object arrays are refused.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

import numpy as np

_LEN = struct.Struct(">I")
MAX_HEADER = 16 * 1024 * 1024


class WireError(ValueError):
    """A malformed frame (a broken or foreign stream)."""


def write_message(stream: IO[bytes], message: Any) -> None:
    """Write one message and flush."""
    arrays: list[np.ndarray] = []

    def encode(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            arrays.append(np.ascontiguousarray(value))
            return {"__array__": len(arrays) - 1}
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    body = encode(message)
    header = json.dumps(
        {"body": body, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]},
        allow_nan=True,
    ).encode("utf-8")
    stream.write(_LEN.pack(len(header)))
    stream.write(header)
    for a in arrays:
        stream.write(memoryview(a).cast("B"))
    stream.flush()


def read_message(stream: IO[bytes]) -> Any:
    """Read one message; EOFError at a clean end of stream."""
    head = stream.read(_LEN.size)
    if not head:
        raise EOFError("end of stream")
    if len(head) != _LEN.size:
        raise WireError("truncated frame length")
    (size,) = _LEN.unpack(head)
    if size > MAX_HEADER:
        raise WireError("frame header too large")
    try:
        header = json.loads(_read_exact(stream, size))
        body = header["body"]
        specs = [(np.dtype(d), tuple(int(n) for n in shape)) for d, shape in header["arrays"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise WireError("malformed frame header") from exc
    arrays = []
    for dtype, shape in specs:
        if dtype.hasobject:
            raise WireError("object arrays are not accepted")
        count = int(np.prod(shape, dtype=np.int64))
        data = _read_exact(stream, count * dtype.itemsize)
        arrays.append(np.frombuffer(data, dtype=dtype).reshape(shape).copy())

    def decode(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                return arrays[int(value["__array__"])]
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return decode(body)


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("stream ended inside a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
