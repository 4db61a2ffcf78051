"""Trial records → pandas DataFrames (history and metrics)."""

from __future__ import annotations

import contextlib
import datetime
import gc
import itertools
import operator
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .records import MetricSeries
from .serialization import decode_value

#: The columns after the parameters, in the original daskperiment's order (plain and verbose history).
PLAIN_COLUMNS: tuple[str, ...] = ("Result", "Success", "Finished", "Process Time", "Description")
VERBOSE_COLUMNS: tuple[str, ...] = ("Seed", "Result", "Result Type", "Success", "Finished", "Process Time",
                                    "Description", "Sweep")

NOT_FINISHED = "Not finished (running, or its process ended before the trial completed)"


def _local_datetimes(timestamps: list[Any]) -> NDArray[np.datetime64]:
    tz = datetime.datetime.now().astimezone().tzinfo
    stamps = pd.to_datetime(pd.Series(timestamps, dtype="float64"), unit="s", utc=True)
    return stamps.dt.tz_convert(tz).dt.tz_localize(None).to_numpy()


def _column(values: list[Any], index: pd.Index) -> pd.Series:
    """One column with the dtype pandas infers for an object array (``infer_objects``); numbers
    straight from ``np.array``, which does the same for them at twice the speed. Typed values
    (stored as ``{"$type": ...}``, see :mod:`daskperiment.serialization`) are decoded first."""
    kinds = set(map(type, values))
    if dict in kinds or list in kinds:
        values = [decode_value(v) for v in values]
        kinds = set(map(type, values))
    first = values[0] if values else None
    numeric = isinstance(first, (int, float, np.number)) and not isinstance(first, bool)
    if numeric and bool not in kinds:  # np.array would turn [1, True] into ints
        try:
            array = np.array(values)
        except (ValueError, TypeError):
            array = None
        if array is not None and array.ndim == 1 and array.dtype.kind in "if":
            return pd.Series(array, index=index, copy=False)
    return pd.Series(values, index=index, dtype=object).infer_objects()


def _parameter_columns(parameters: list[Any], index: pd.Index) -> dict[str, pd.Series]:
    """Parameter dicts → one column per name (NaN where a trial lacked it), names in first-seen order.

    C-level loops where they exist (``map``, ``itemgetter``) and dtype inference on
    arrays: about 5x faster than ``pd.DataFrame(list_of_dicts)`` on 100,000 trials,
    with the same dtypes. Fast path for the usual history, where every trial has the
    first trial's names: then every trial has as many names as the first (``map(len)``,
    a C loop) and each of them (``itemgetter`` raises otherwise).
    """
    if None in parameters:
        parameters = [row or {} for row in parameters]
    first = parameters[0] if parameters else {}
    if set(map(len, parameters)) <= {len(first)}:
        try:
            return {name: _column(list(map(operator.itemgetter(name), parameters)), index) for name in first}
        except KeyError:  # as many names, but other ones
            pass
    return {name: _column([row.get(name, np.nan) for row in parameters], index)
            for name in dict.fromkeys(itertools.chain.from_iterable(parameters))}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Building 100,000 rows allocates millions of objects, none of them cyclic garbage: the
    collector's repeated passes over them would cost a third of ``get_history()``."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def history_frame(columns: Mapping[str, list[Any]], verbose: bool = False) -> pd.DataFrame:
    """One row per trial indexed by ``Trial ID``: parameters, then the outcome columns.

    ``columns`` is :meth:`Backend.load_history` output. Columns as in the original
    daskperiment: ``Result, Success, Finished, Process Time, Description``, and with
    ``verbose`` ``Seed, Result, Result Type, Success, Finished, Process Time, Description``.
    Dtypes are what pandas infers from the values (an all-missing ``Description`` is
    float NaN); ``Success`` is a nullable boolean only while some trial is unfinished.
    A failed trial's ``Result Type`` reads ``"None"``, as the original's did.
    """
    ids = columns["trial_id"]
    index = pd.Index(np.fromiter(ids, dtype=np.int64, count=len(ids)), name="Trial ID")
    success, finished, description = columns["success"], columns["finished"], columns["description"]
    result = columns["result"]
    if None in success:  # running, or its process died: no outcome yet
        unfinished = [s is None and f is None for s, f in zip(success, finished)]
        description = [NOT_FINISHED if u else d for u, d in zip(unfinished, description)]
        success_column: pd.arrays.BooleanArray | NDArray[np.bool_] = pd.array(success, dtype="boolean")
    else:
        success_column = np.array(success, dtype=bool)
    if not all(success):
        result = [r if s else None for r, s in zip(result, success)]
    outcome: dict[str, Any] = {}
    if verbose:
        outcome["Seed"] = pd.Series(columns["seed"], index=index, dtype=object).infer_objects()
    outcome["Result"] = pd.Series(result, index=index, dtype=object).infer_objects()
    if verbose:
        outcome["Result Type"] = [("None" if s is False and t is None else t)
                                  for s, t in zip(success, columns["result_type"])]
    outcome.update({
        "Success": success_column,
        "Finished": _local_datetimes(finished),
        "Process Time": pd.to_timedelta(np.asarray(columns["process_time"], dtype="float64"), unit="s"),
        "Description": pd.Series(description, index=index, dtype=object).fillna(np.nan).infer_objects(),
    })
    if verbose:  # the id of the sweep a trial belongs to (NaN for a lone trial): last, after the original's
        outcome["Sweep"] = pd.Series(columns["sweep"], index=index, dtype=object).fillna(np.nan)
    outcome = {name: outcome[name] for name in (VERBOSE_COLUMNS if verbose else PLAIN_COLUMNS)}
    parameters = _parameter_columns(columns["parameters"], index)
    if parameters.keys() & outcome.keys():  # a parameter named like an outcome column: keep both
        return pd.concat([pd.DataFrame(parameters, index=index), pd.DataFrame(outcome, index=index)], axis=1)
    return pd.DataFrame({**parameters, **outcome}, index=index)


def metric_frame(series: Mapping[int, MetricSeries], trial_ids: Iterable[int]) -> pd.DataFrame:
    """Index ``Epoch``, one column per ``Trial ID`` (outer-joined on epoch)."""
    columns: list[pd.Series] = []
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
