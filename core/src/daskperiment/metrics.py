"""Buffered metric writing: ``save_metric`` is a couple of list appends.

Points are buffered per trial and metric and written to the backend in batches
as raw numpy arrays (plain numbers, no pickle): when a buffer reaches
:data:`BATCH_POINTS`, at least every :data:`FLUSH_INTERVAL` seconds (a daemon
thread per process), at the end of every step and at the end of the trial.
Memory is therefore bounded by the batch size, not by the number of points.

Values stay integers when every value of a batch is an int (or bool): the backend
receives ``int64`` values then, ``float64`` otherwise, so ``load_metric`` gives back
ints for ints, as the original did.

When a background write fails (the server died), the buffer keeps the error, logs
it once, and makes the step's next ``save_metric`` raise it: the trial fails within
one write's timeout with one clear error, instead of retrying a dead server every
second until the step ends.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Protocol

import numpy as np

from .errors import InvalidArgumentError

logger = logging.getLogger(__name__)

BATCH_POINTS = 262_144
FLUSH_INTERVAL = 1.0
#: Points per backend write of :meth:`Experiment.save_metrics` (32 MB per array): keeps each
#: stored batch far below per-value limits (SQLite's 1 GB blobs, Redis' 512 MB strings).
WRITE_POINTS = 1 << 22

_SCALARS = (int, float, bool)


def check_metric_key(key: Any) -> str:
    """Metric keys are non-empty strings (``/``, ``.`` and ``:`` are allowed, unlike the original)."""
    if type(key) is not str:
        raise InvalidArgumentError(
            f"Metric name must be str, given: {key!r}{type(key)}. Use a non-empty string such as 'loss'.")
    if not key:
        raise InvalidArgumentError("Metric name must be a non-empty str, given: ''. Use a name such as 'loss'.")
    return key


def _is_real_scalar(value: Any) -> bool:
    return type(value) in _SCALARS or (isinstance(value, np.generic) and value.dtype.kind in "biuf")


def check_metric_value(key: str, value: Any) -> None:
    """One point's value must be a real scalar: an array would make the whole series unreadable."""
    if type(value) in _SCALARS or _is_real_scalar(value):
        return
    hint = (" Save arrays of points with ex.save_metrics(key, epochs, values)."
            if hasattr(value, "__len__") or hasattr(value, "shape") else "")
    raise InvalidArgumentError(
        f"Metric {key!r}: value must be a real scalar (int, float, bool or a numpy scalar), given: "
        f"{_short(value)}{type(value)}.{hint}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def metric_arrays(key: str, epochs: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(epochs, values)`` arrays for ``save_metrics``: 1-d, equally long, numbers."""
    epoch_array, value_array = np.asarray(epochs), np.asarray(values)
    if epoch_array.ndim != 1 or value_array.ndim != 1 or len(epoch_array) != len(value_array):
        raise InvalidArgumentError(
            f"Metric {key!r}: epochs and values must be 1-d and equally long, given shapes "
            f"{epoch_array.shape} and {value_array.shape}.")
    if epoch_array.dtype.kind not in "iuf":
        raise InvalidArgumentError(f"Metric {key!r}: epochs must be numbers, given dtype {epoch_array.dtype}.")
    if value_array.dtype.kind not in "biuf":
        raise InvalidArgumentError(f"Metric {key!r}: values must be numbers, given dtype {value_array.dtype}.")
    return _epoch_dtype(epoch_array), _value_dtype(value_array)


def _epoch_dtype(epochs: np.ndarray) -> np.ndarray:
    return epochs.astype("<f8" if epochs.dtype.kind == "f" else "<i8", copy=False)


def _value_dtype(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "u" and values.dtype.itemsize == 8:
        return values.astype("<f8")  # uint64 does not fit int64
    return values.astype("<f8" if values.dtype.kind == "f" else "<i8", copy=False)


class MetricSink(Protocol):
    """Where a buffer writes: the backend, or the outbox of a step away from the driver
    (:class:`daskperiment.relay.Outbox`, which carries the points back to the driver)."""

    def save_metrics(self, trial_id: int, key: str, epochs: np.ndarray, values: np.ndarray) -> None:
        """Append a batch of points of one metric of one trial."""


class MetricBuffer:
    """Points of one trial not yet written; safe against the flusher thread.

    Appenders never lock: the flusher copies the first ``n`` points, writes them,
    then deletes exactly those ``n`` (``del lst[:n]`` is atomic), so points
    appended meanwhile are kept for the next batch.
    """

    __slots__ = ("backend", "trial_id", "series", "pending", "error", "_lock", "__weakref__")

    def __init__(self, backend: MetricSink, trial_id: int) -> None:
        self.backend = backend
        self.trial_id = trial_id
        self.series: dict[str, tuple[list[Any], list[Any]]] = {}
        self.pending = 0
        self.error: BaseException | None = None  #: a failed background write, raised by the next flush
        self._lock = threading.Lock()

    def new_series(self, key: str) -> tuple[list[Any], list[Any]]:
        series = self.series.setdefault(key, ([], []))
        _flusher.watch(self)
        return series

    def write(self, key: str, epochs: np.ndarray, values: np.ndarray) -> None:
        """Write arrays of points now, after the points buffered so far (so save order holds)."""
        self.flush()
        with self._lock:
            for start in range(0, len(values), WRITE_POINTS):
                stop = start + WRITE_POINTS
                self.backend.save_metrics(self.trial_id, key, epochs[start:stop], values[start:stop])

    def flush(self) -> None:
        """Write every buffered point; raise a clear error for non-numeric ones, or the error
        of a failed background write (the backend is not tried again for this trial)."""
        if not self.series and self.error is None:  # nothing was ever saved: every step ends here
            self.pending = 0
            return
        with self._lock:
            self.pending = 0
            if self.error is not None:
                raise self.error
            for key, (epochs, values) in list(self.series.items()):
                n = len(values)  # values are appended after epochs: each has its epoch
                if not n:
                    continue
                epoch_arr = np.asarray(epochs[:n])
                if epoch_arr.dtype.kind not in "iuf" or epoch_arr.ndim != 1:
                    del epochs[:n], values[:n]
                    raise InvalidArgumentError(
                        f"Metric {key!r}: epochs must be numbers, got {epoch_arr.dtype} values")
                value_arr = np.asarray(values[:n])
                if value_arr.dtype.kind not in "biuf":  # ints beyond int64 (object) are kept as floats
                    value_arr = value_arr.astype(np.float64)
                self.backend.save_metrics(self.trial_id, key, _epoch_dtype(epoch_arr), _value_dtype(value_arr))
                del epochs[:n], values[:n]


class _Flusher:
    """One daemon thread per process flushing live buffers every FLUSH_INTERVAL."""

    def __init__(self) -> None:
        self._buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, buffer: MetricBuffer) -> None:
        with self._lock:
            self._buffers.add(buffer)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="daskperiment-metric-flusher",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        event = threading.Event()
        while True:
            event.wait(FLUSH_INTERVAL)
            with self._lock:
                buffers = list(self._buffers)
            for buffer in buffers:
                if buffer.error is None and any(values for _, values in list(buffer.series.values())):
                    try:
                        buffer.flush()
                    except Exception as exc:  # raised to the trial by its next save_metric
                        buffer.error = exc
                        buffer.pending = BATCH_POINTS  # the next save_metric flushes, and raises
                        logger.error("Writing metrics of trial %s failed: %s; the trial fails at its next "
                                     "save_metric.", buffer.trial_id, exc)


_flusher = _Flusher()
