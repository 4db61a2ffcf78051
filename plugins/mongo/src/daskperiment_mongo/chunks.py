"""Bounded-size chunk documents for metric batches and large byte strings.

MongoDB documents are limited to 16 MB, and one trial may log tens of millions of
metric points or persist a result of any size. Both are therefore cut into chunk
documents of at most :data:`CHUNK_BYTES` of payload, each written in one
``insert_many``.

A batch of chunks only counts once it is complete: every metric chunk carries its
``part`` and the batch's ``parts``, and a byte string becomes visible only when the
document referring to it is written after all its chunks. A connection lost halfway
through a write therefore leaves invisible leftovers, never a torn series or blob.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np
from daskperiment.records import MetricSeries
from numpy.typing import NDArray

#: Payload bytes per chunk document: far below the 16 MB limit, large enough that
#: 10 million points (160 MB) take only ~150 documents.
CHUNK_BYTES = 1 << 20

_seq_lock = threading.Lock()
_last_seq = 0


def next_seq() -> int:
    """A process-wide increasing int64 (wall-clock nanoseconds, bumped on ties or clock steps).

    Orders metric batches and purity entries across processes by time and, within a
    process, strictly by call order.
    """
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns())
        return _last_seq


# ---- metrics -----------------------------------------------------------------------
def metric_documents(trial_id: int, key: str, epochs: NDArray[Any], values: NDArray[np.float64]) -> list[dict[str, Any]]:
    """One metric batch as chunk documents (raw little-endian arrays, no pickle)."""
    epochs = np.ascontiguousarray(epochs)
    values = np.ascontiguousarray(values, dtype="<f8" if np.asarray(values).dtype.kind == "f" else "<i8")
    if epochs.dtype.byteorder == ">":
        epochs = epochs.astype(epochs.dtype.newbyteorder("<"))
    per_chunk = max(1, CHUNK_BYTES // (epochs.itemsize + values.itemsize))
    starts = range(0, len(values), per_chunk)
    seq, batch = next_seq(), uuid.uuid4().hex
    return [{"category": "metric", "trial_id": int(trial_id), "key": key, "seq": seq, "batch": batch,
             "part": part, "parts": len(starts), "epoch_dtype": epochs.dtype.str, "value_dtype": values.dtype.str,
             "epochs": epochs[start:start + per_chunk].tobytes(),
             "values": values[start:start + per_chunk].tobytes()}
            for part, start in enumerate(starts)]


def join_metric_documents(documents: Iterable[dict[str, Any]]) -> dict[int, MetricSeries]:
    """Series per trial from chunk documents sorted by (trial_id, seq, batch, part).

    Chunks of an incomplete batch (a write cut off by a lost connection) are skipped.
    """
    series: dict[int, tuple[list[NDArray[Any]], list[NDArray[Any]]]] = {}
    pending: list[dict[str, Any]] = []
    for doc in documents:
        if pending and (doc["batch"] != pending[0]["batch"] or doc["trial_id"] != pending[0]["trial_id"]):
            _add_batch(series, pending)
            pending = []
        pending.append(doc)
    _add_batch(series, pending)
    return {trial_id: MetricSeries(np.concatenate(e), np.concatenate(v)) for trial_id, (e, v) in series.items()}


def _add_batch(series: dict[int, tuple[list[NDArray[Any]], list[NDArray[Any]]]], chunks: list[dict[str, Any]]) -> None:
    if not chunks or [c["part"] for c in chunks] != list(range(chunks[0]["parts"])):
        return
    epochs, values = series.setdefault(chunks[0]["trial_id"], ([], []))
    for chunk in chunks:
        epochs.append(np.frombuffer(chunk["epochs"], dtype=chunk["epoch_dtype"]))
        values.append(np.frombuffer(chunk["values"], dtype=chunk.get("value_dtype") or "<f8"))


# ---- byte strings ------------------------------------------------------------------------
def blob_id(blob: str, n: int) -> str:
    return f"blob:{blob}:{n}"


def blob_documents(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A reference ``{"blob", "chunks", "size"}`` and the chunk documents it names."""
    blob = uuid.uuid4().hex
    view = memoryview(data)
    chunks = [{"_id": blob_id(blob, n), "category": "blob", "blob": blob, "n": n,
               "data": bytes(view[start:start + CHUNK_BYTES])}
              for n, start in enumerate(range(0, len(data), CHUNK_BYTES))]
    return {"blob": blob, "chunks": len(chunks), "size": len(data)}, chunks


def chunk_ids(reference: dict[str, Any]) -> list[str]:
    return [blob_id(reference["blob"], n) for n in range(reference["chunks"])]


def join_blob(reference: dict[str, Any], chunks: Iterable[dict[str, Any]]) -> bytes | None:
    """The byte string, or ``None`` when a chunk is missing (deleted by a concurrent overwrite)."""
    parts = sorted(chunks, key=lambda c: c["n"])
    if [c["n"] for c in parts] != list(range(reference["chunks"])):
        return None
    return b"".join(c["data"] for c in parts)
