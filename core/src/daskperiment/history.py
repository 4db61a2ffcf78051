"""Trial records → pandas DataFrames (history and metrics)."""

from __future__ import annotations

import contextlib
import datetime
import gc
import itertools
import numbers
import operator
import os
from typing import Any, Callable, Iterable, Iterator, Mapping

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
RUNNING = "Running (no outcome yet; its process shows signs of life)"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


_NONE = type(None)
#: The exact types each history column usually holds (checked for a whole column at C speed).
_USUAL: dict[str, set[type]] = {
    "parameters": {dict, _NONE}, "seed": {int, _NONE}, "success": {bool, _NONE}, "pid": {int, _NONE},
    **{name: {float, int, _NONE} for name in ("finished", "process_time", "started", "heartbeat")},
    **{name: {str, _NONE} for name in ("result_type", "description", "sweep", "host")},
}
#: What each history column may hold besides ``None``: a check per value, for unusual columns.
_VALID: dict[str, Callable[[Any], bool]] = {
    "parameters": lambda v: isinstance(v, dict),
    "seed": _is_integer,
    "finished": _is_number, "process_time": _is_number, "started": _is_number, "heartbeat": _is_number,
    "success": lambda v: isinstance(v, bool),
    "result_type": lambda v: isinstance(v, str), "description": lambda v: isinstance(v, str),
    "sweep": lambda v: isinstance(v, str), "host": lambda v: isinstance(v, str),
    "pid": _is_integer,
}


def clean_columns(columns: dict[str, list[Any]], report: Callable[[Any, str], None]) -> dict[str, list[Any]]:
    """Columns whose values have the types the history needs: a malformed or foreign value
    becomes ``None`` and is reported (with its trial id) instead of failing the whole history.
    Rows without an integer trial id are dropped."""
    ids = columns["trial_id"]
    if not set(map(type, ids)) <= {int}:
        keep = [i for i, t in enumerate(ids) if _is_integer(t)]
        for i in set(range(len(ids))) - set(keep):
            report(ids[i], f"its trial id {ids[i]!r} is not an integer")
        columns = {name: [values[i] for i in keep] for name, values in columns.items()}
        columns["trial_id"] = [int(t) for t in columns["trial_id"]]
    for name, valid in _VALID.items():
        values = columns.get(name)
        if values is None or set(map(type, values)) <= _USUAL[name]:  # the usual case: a C loop, no copy
            continue
        if all(v is None or valid(v) for v in values):  # numpy numbers and other acceptable types
            continue
        cleaned = []
        for trial_id, value in zip(columns["trial_id"], values):
            if value is not None and not valid(value):
                report(trial_id, f"{name} holds {type(value).__name__} {value!r:.80}")
                value = None
            cleaned.append(value)
        columns[name] = cleaned
    return columns


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's), or not a pid we can judge: not proven gone
    return True


def abandoned(records: Iterable[Mapping[str, Any]], *, hostname: str, now: float, timeout: float) -> dict[int, str]:
    """Trial id → description, for unfinished trials whose process is known to be gone.

    On this host: its pid is not alive. Anywhere: no heartbeat (nor start) for ``timeout``
    seconds — a process that stopped beating, or a pid reused by another process, or a
    start that timed out but was stored afterwards (nothing beats for it).
    """
    gone = {}
    for record in records:
        host, pid = record.get("host"), record.get("pid")
        last = record.get("heartbeat") or record.get("started")
        if not _is_number(last):
            last = None
        fresh = last is not None and now - last <= timeout
        if host == hostname and isinstance(pid, int) and not isinstance(pid, bool) and not _pid_alive(pid):
            why = f"its process {pid} on this host ({host}) ended before the trial completed"
        elif fresh:
            continue
        else:
            age = "ever" if last is None else f"{now - last:.0f} s"
            why = f"no heartbeat from host {host} (pid {pid}) for {age} (more than {timeout:g} s)"
        gone[int(record["trial_id"])] = f"Abandoned: {why}; metrics and persisted results may be partial"
    return gone


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


def history_frame(columns: Mapping[str, list[Any]], verbose: bool = False,
                  abandoned: Mapping[int, str] | None = None) -> pd.DataFrame:
    """One row per trial indexed by ``Trial ID``: parameters, then the outcome columns.

    ``columns`` is :meth:`Backend.load_history` output. Columns as in the original
    daskperiment: ``Result, Success, Finished, Process Time, Description``, and with
    ``verbose`` ``Seed, Result, Result Type, Success, Finished, Process Time, Description``.
    Dtypes are what pandas infers from the values (an all-missing ``Description`` is
    float NaN); ``Success`` is a nullable boolean only while some trial is unfinished.
    A failed trial's ``Result Type`` reads ``"None"``, as the original's did.
    ``abandoned`` (trial id → description, see :func:`abandoned`) marks
    unfinished trials whose process is gone: ``Success`` False and that description.
    """
    ids = columns["trial_id"]
    index = pd.Index(np.fromiter(ids, dtype=np.int64, count=len(ids)), name="Trial ID")
    success, finished, description = columns["success"], columns["finished"], columns["description"]
    result = columns["result"]
    if abandoned:
        success = [False if t in abandoned else s for t, s in zip(ids, success)]
        description = [abandoned.get(t, d) for t, d in zip(ids, description)]
    if None in success:  # running, or its process died: no outcome yet
        unfinished = [s is None and f is None for s, f in zip(success, finished)]
        status = NOT_FINISHED if abandoned is None else RUNNING
        description = [status if u else d for u, d in zip(unfinished, description)]
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
