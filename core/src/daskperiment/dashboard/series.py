"""Metric series made small enough to draw: min/max per bucket, so no extreme is lost.

A million points cannot be sent to a browser and drawn in a second, and plain
decimation would hide the spikes one looks for in a loss curve. Each bucket of
consecutive points keeps its lowest and its highest point, in their original
order: the drawn line covers exactly the range the full series covers (the same
idea as LTTB or Plotly's resampler "min/max per pixel", in a few numpy calls).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_BUCKETS", "MAX_BUCKETS", "downsample"]

DEFAULT_BUCKETS = 1000
MAX_BUCKETS = 10_000


def downsample(epochs: NDArray[Any], values: NDArray[np.float64],
               buckets: int = DEFAULT_BUCKETS) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """At most ``2 * buckets`` points: for each bucket of consecutive points its min and max.

    Points are ordered by epoch first (a stable sort, so repeated epochs keep their
    save order). NaN values are kept only where a whole bucket is NaN.
    """
    order = np.argsort(epochs, kind="stable")
    if not np.all(order[:-1] < order[1:]):
        epochs, values = epochs[order], values[order]
    n = len(values)
    if n <= 2 * buckets:
        return epochs, values
    size = math.ceil(n / buckets)
    rows = math.ceil(n / size)
    padded = np.full(rows * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(rows, size)
    low = np.where(np.isnan(grid), np.inf, grid).argmin(axis=1)
    high = np.where(np.isnan(grid), -np.inf, grid).argmax(axis=1)
    starts = np.arange(rows) * size
    picks: NDArray[np.intp] = np.sort(np.stack([starts + low, starts + high], axis=1), axis=1).ravel()
    picks = picks[picks < n]
    keep = np.ones(len(picks), dtype=bool)
    keep[1:] = picks[1:] != picks[:-1]  # a bucket whose min and max are one point
    picks = picks[keep]
    return epochs[picks], values[picks]
