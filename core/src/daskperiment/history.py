"""Trial records → pandas DataFrames (history and metrics)."""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .backends import MetricSeries

NOT_FINISHED = "Not finished (running, or its process ended before the trial completed)"


def _local_datetimes(timestamps: list[Any]) -> np.ndarray:
    tz = datetime.datetime.now().astimezone().tzinfo
    stamps = pd.to_datetime(pd.Series(timestamps, dtype="float64"), unit="s", utc=True)
    return stamps.dt.tz_convert(tz).dt.tz_localize(None).to_numpy()


def history_frame(columns: Mapping[str, list[Any]], verbose: bool = False) -> pd.DataFrame:
    """One row per trial indexed by ``Trial ID``: parameters, then the outcome columns.

    ``columns`` is :meth:`Backend.load_history` output. Integer and float columns
    keep their dtypes; ``Success`` is a nullable boolean only while some trial is
    unfinished.
    """
    index = pd.Index(columns["trial_id"], name="Trial ID", dtype="int64")
    params = pd.DataFrame([p or {} for p in columns["parameters"]], index=index)
    success = columns["success"]
    finished = columns["finished"]
    unfinished = [s is None and f is None for s, f in zip(success, finished)]
    out: dict[str, Any] = {
        "Result": pd.Series([r if s else None for r, s in zip(columns["result"], success)], index=index,
                            dtype=object).infer_objects(),
        "Success": pd.array(success, dtype="boolean") if any(unfinished) else np.array(success, dtype=bool),
        "Finished": _local_datetimes(finished),
        "Process Time": pd.to_timedelta(np.asarray(columns["process_time"], dtype="float64"), unit="s"),
        "Description": [NOT_FINISHED if u else (d if d is not None else np.nan)
                        for u, d in zip(unfinished, columns["description"])],
    }
    if verbose:
        out["Seed"] = pd.Series(columns["seed"], index=index, dtype=object).infer_objects()
        out["Result Type"] = columns["result_type"]
    outcome = pd.DataFrame(out, index=index)
    return pd.concat([params, outcome], axis=1) if len(params.columns) else outcome


def metric_frame(series: Mapping[int, MetricSeries], trial_ids: Iterable[int]) -> pd.DataFrame:
    """Index ``Epoch``, one column per ``Trial ID`` (outer-joined on epoch)."""
    columns = []
    for trial_id in trial_ids:
        epochs, values = series[trial_id]
        columns.append(pd.Series(values, index=pd.Index(epochs, name="Epoch"), name=trial_id, copy=False))
    if len(columns) == 1:
        frame = columns[0].to_frame()
    else:
        columns = [s[~s.index.duplicated(keep="last")] for s in columns]
        frame = pd.concat(columns, axis=1).sort_index()
    frame.columns = pd.Index(list(frame.columns), name="Trial ID")
    frame.index.name = "Epoch"
    return frame
