"""Buffered metric writing: ``save_metric`` is a couple of list appends.

Points are buffered per trial and metric and written to the backend in batches
as raw numpy arrays (plain numbers, no pickle): when a buffer reaches
:data:`BATCH_POINTS`, at least every :data:`FLUSH_INTERVAL` seconds (a daemon
thread per process), at the end of every step and at the end of the trial.
Memory is therefore bounded by the batch size, not by the number of points.

When a background write fails (the server died), the buffer keeps the error, logs
it once, and makes the step's next ``save_metric`` raise it: the trial fails within
one write's timeout with one clear error, instead of retrying a dead server every
second until the step ends.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .backends import Backend

logger = logging.getLogger(__name__)

BATCH_POINTS = 262_144
FLUSH_INTERVAL = 1.0


class MetricBuffer:
    """Points of one trial not yet written; safe against the flusher thread.

    Appenders never lock: the flusher copies the first ``n`` points, writes them,
    then deletes exactly those ``n`` (``del lst[:n]`` is atomic), so points
    appended meanwhile are kept for the next batch.
    """

    __slots__ = ("backend", "trial_id", "series", "pending", "error", "_lock", "__weakref__")

    def __init__(self, backend: Backend, trial_id: int) -> None:
        self.backend = backend
        self.trial_id = trial_id
        self.series: dict[str, tuple[list[Any], list[Any]]] = {}
        self.pending = 0
        self.error: BaseException | None = None  #: a failed background write, raised by the next flush
        self._lock = threading.Lock()

    def new_series(self, key: str) -> tuple[list[Any], list[Any]]:
        if not isinstance(key, str):
            raise TypeError(f"Metric key must be a str, got {type(key).__qualname__}")
        series = self.series.setdefault(key, ([], []))
        _flusher.watch(self)
        return series

    def flush(self) -> None:
        """Write every buffered point; raise a clear error for non-numeric ones, or the error
        of a failed background write (the backend is not tried again for this trial)."""
        with self._lock:
            self.pending = 0
            if self.error is not None:
                raise self.error
            for key, (epochs, values) in list(self.series.items()):
                n = len(values)  # values are appended after epochs: each has its epoch
                if not n:
                    continue
                epoch_arr = np.asarray(epochs[:n])
                if epoch_arr.dtype.kind not in "iuf":
                    del epochs[:n], values[:n]
                    raise TypeError(f"Metric {key!r}: epochs must be numbers, got {epoch_arr.dtype}")
                try:
                    value_arr = np.asarray(values[:n], dtype=np.float64)
                except (TypeError, ValueError) as exc:
                    del epochs[:n], values[:n]
                    raise TypeError(f"Metric {key!r}: values must be numbers ({exc})") from exc
                if epoch_arr.dtype.kind != "f":
                    epoch_arr = epoch_arr.astype(np.int64, copy=False)
                self.backend.save_metrics(self.trial_id, key, epoch_arr, value_arr)
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
