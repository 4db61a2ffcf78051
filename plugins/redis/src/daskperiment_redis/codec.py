"""Plain-data encodings of what the Redis backend stores.

Metadata is JSON and metrics are raw little-endian numbers: reading a shared
server must never run code, so nothing here is pickled. A metric chunk is::

    8-byte header: the epochs' numpy dtype ("<i8" or "<f8"), then the values' dtype
                   (absent in chunks written before integer values were kept: float64), NUL-padded
    n epochs     : int64 or float64, little-endian
    n values     : int64 or float64, little-endian

The header is 8 bytes so both arrays stay 8-byte aligned for ``np.frombuffer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
from daskperiment.records import MetricSeries
from numpy.typing import NDArray

#: Points per metric chunk: one Redis value stays far below the 512 MB limit.
CHUNK_POINTS = 1 << 20
_HEADER = 8
_DTYPES = {b"<i8": np.dtype("<i8"), b"<f8": np.dtype("<f8"), b"": np.dtype("<f8")}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def encode_metric_chunks(epochs: NDArray[Any], values: NDArray[np.float64]) -> Iterator[bytes]:
    """The chunks of one batch of points, at most :data:`CHUNK_POINTS` points each."""
    dtype = np.dtype("<f8") if np.asarray(epochs).dtype.kind == "f" else np.dtype("<i8")
    value_dtype = np.dtype("<f8") if np.asarray(values).dtype.kind == "f" else np.dtype("<i8")
    epochs = np.ascontiguousarray(epochs, dtype=dtype)
    values = np.ascontiguousarray(values, dtype=value_dtype)
    header = (dtype.str + value_dtype.str).encode().ljust(_HEADER, b"\0")
    for start in range(0, len(values), CHUNK_POINTS):
        stop = start + CHUNK_POINTS
        yield b"".join((header, epochs[start:stop].tobytes(), values[start:stop].tobytes()))


def decode_metric_chunks(chunks: list[bytes]) -> MetricSeries:
    """Concatenate the chunks of one series, in the order they were appended."""
    epochs, values = [], []
    for chunk in chunks:
        header = chunk[:_HEADER].rstrip(b"\0")
        dtype, value_dtype = _DTYPES[header[:3]], _DTYPES[header[3:6]]
        n = (len(chunk) - _HEADER) // 16
        epochs.append(np.frombuffer(chunk, dtype=dtype, count=n, offset=_HEADER))
        values.append(np.frombuffer(chunk, dtype=value_dtype, count=n, offset=_HEADER + 8 * n))
    return MetricSeries(np.concatenate(epochs), np.concatenate(values))
