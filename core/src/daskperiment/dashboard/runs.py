"""The runs table: one row per trial with its status and metric summaries, sorted,
filtered and cut into pages on the server so 100,000 trials load as fast as 100."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..backends import Backend
from ..history import VERBOSE_COLUMNS, gc_paused, history_frame
from ..records import VERBOSE_FIELDS
from .query import apply_filter

__all__ = ["STATUSES", "RunsFrame", "build_runs", "metric_direction", "plain", "query_runs", "trial_status"]

#: running: no outcome yet and its process is (or may be) alive; abandoned: no outcome
#: and its process on this host is gone (killed, crashed) — it will never finish.
STATUSES = ("running", "finished", "failed", "abandoned")
FIXED = ("Trial", "Status")
OUTCOME = ("Result", "Success", "Finished", "Process Time", "Seed", "Description")
PAGE_LIMIT = 1000
VIEWS_KEPT = 8
_LOWER_IS_BETTER = re.compile(r"loss|err|mse|mae|rmse|perplexity|time|latency|cost|regret", re.IGNORECASE)


def metric_direction(name: str) -> str:
    """``"min"`` for names that read as a cost (loss, error, time …), else ``"max"``."""
    return "min" if _LOWER_IS_BETTER.search(name) else "max"


@dataclass
class RunsFrame:
    """The table of one experiment (or of its newest trials while the whole one is being built)."""

    frame: pd.DataFrame
    kinds: dict[str, str]  #: column → "id" | "status" | "parameter" | "outcome" | "metric"
    metrics: list[str]
    last_trial_id: int
    unfinished: int
    complete: bool = True  #: False: only the newest trials, answered while the whole table is built
    total: int = 0  #: trials in the experiment
    built: float = field(default_factory=time.monotonic)
    #: (filter, sort, descending) → the filtered, sorted frame and its varying columns; paging
    #: through a view, or toggling columns, costs a slice instead of a sort
    views: OrderedDict[tuple[str, str, bool], tuple[pd.DataFrame, set[str]]] = field(default_factory=OrderedDict)

    def view(self, filter: str, column: str, descending: bool) -> tuple[pd.DataFrame, set[str]]:
        key = (filter.strip(), column, descending)
        if key not in self.views:
            frame = apply_filter(self.frame, filter)
            if column != "Trial" or not descending:
                frame = _sorted(frame, column, descending)
            else:
                frame = frame.iloc[::-1]
            self.views[key] = (frame, set(varying_columns(frame)))
            while len(self.views) > VIEWS_KEPT:
                self.views.popitem(last=False)
        self.views.move_to_end(key)
        return self.views[key]


def _alive(host: Any, pid: Any, this_host: str) -> bool:
    """Whether the process that started a trial may still run it (unknowable on another host)."""
    if host != this_host or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _statuses(backend: Backend, ids: NDArray[np.int64], success: pd.Series) -> NDArray[Any]:
    status = np.where(success.fillna(False).to_numpy(dtype=bool), "finished", "failed").astype(object)
    unfinished = success.isna().to_numpy()
    if unfinished.any():
        this_host = socket.gethostname()
        records = {r["trial_id"]: r for r in backend.load_trials(ids[unfinished].tolist())}
        for i in np.flatnonzero(unfinished):
            record = records.get(int(ids[i]), {})
            status[i] = "running" if _alive(record.get("host"), record.get("pid"), this_host) else "abandoned"
    return status


def _jsonable_column(column: pd.Series) -> pd.Series:
    """Lists and dicts (parameters may be any plain data) as JSON text, to show, sort and compare."""
    if column.dtype != object:
        return column
    return column.map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict, tuple)) else v)


def _metric_columns(backend: Backend, ids: NDArray[np.int64], keys: Iterable[str],
                    subset: bool) -> dict[str, NDArray[np.float64]]:
    """``<key>.last`` and ``<key>.best`` for every metric, from :meth:`Backend.metric_summaries`."""
    columns: dict[str, NDArray[np.float64]] = {}
    for key in keys:
        summary = backend.metric_summaries(key, ids.tolist() if subset else None)
        last, best = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
        if len(summary.trial_ids) and len(ids):
            where = np.minimum(np.searchsorted(ids, summary.trial_ids), len(ids) - 1)  # ids are sorted
            known = ids[where] == summary.trial_ids
            last[where[known]] = summary.last[known]
            best[where[known]] = (summary.low if metric_direction(key) == "min" else summary.high)[known]
        columns[f"{key}.last"] = last
        columns[f"{key}.best"] = best
    return columns


def build_runs(backend: Backend, trial_ids: list[int] | None = None) -> RunsFrame:
    """Read the history (of ``trial_ids`` only, when given), the status of unfinished trials and
    every metric's last and best value."""
    last_trial_id = backend.last_trial_id()
    with gc_paused():
        if trial_ids is None:
            columns = backend.load_history(VERBOSE_FIELDS)
        else:
            records = backend.load_trials(trial_ids)
            columns = {field: [r.get(field) for r in records] for field in VERBOSE_FIELDS}
        history = history_frame(columns, verbose=True)
    ids = history.index.to_numpy()
    finished = history["Finished"].to_numpy()
    finished_text = np.char.replace(np.datetime_as_string(finished, unit="s").astype(str), "T", " ").astype(object)
    finished_text[np.isnat(finished)] = None
    success = pd.Series(history["Success"].to_numpy(), dtype="boolean")
    data: dict[str, Any] = {"Trial": ids, "Status": _statuses(backend, ids, success)}
    kinds = {"Trial": "id", "Status": "status"}
    for name in history.columns[:len(history.columns) - len(VERBOSE_COLUMNS)]:  # the parameters
        label = name if name not in (*FIXED, *OUTCOME) else f"{name} (parameter)"
        data[label] = _jsonable_column(history[name]).to_numpy()
        kinds[label] = "parameter"
    outcome = {
        "Result": _jsonable_column(history["Result"]).to_numpy(),
        "Success": history["Success"].to_numpy(),
        "Finished": finished_text,
        "Process Time": history["Process Time"].dt.total_seconds().to_numpy(),
        "Seed": history["Seed"].to_numpy(),
        "Description": history["Description"].to_numpy(),
    }
    data.update(outcome)
    kinds.update(dict.fromkeys(outcome, "outcome"))
    metrics = backend.metric_keys()
    metric_data = _metric_columns(backend, ids, metrics, subset=trial_ids is not None)
    data.update(metric_data)
    kinds.update(dict.fromkeys(metric_data, "metric"))
    frame = pd.DataFrame(data)
    return RunsFrame(frame, kinds, metrics, last_trial_id, int(success.isna().sum()),
                     complete=trial_ids is None, total=len(frame) if trial_ids is None else last_trial_id)


def plain(value: Any) -> Any:
    """A JSON-able Python value (numpy scalars unwrapped, NaN and NA as ``None``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _sorted(frame: pd.DataFrame, column: str, descending: bool) -> pd.DataFrame:
    try:
        return frame.sort_values(column, ascending=not descending, na_position="last", kind="stable")
    except TypeError:  # numbers and text in one column: numbers first, then text
        return frame.sort_values(
            column, ascending=not descending, na_position="last", kind="stable",
            key=lambda s: s.map(lambda v: (1, str(v)) if isinstance(v, str) else (0, v)))


def varying_columns(frame: pd.DataFrame) -> list[str]:
    """Columns with more than one distinct value (missing counts as a value)."""
    return [c for c in frame.columns if c in FIXED or frame[c].nunique(dropna=False) > 1]


def query_runs(runs: RunsFrame, *, filter: str | None = None, sort: str | None = None, descending: bool = True,
               offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """One page of the filtered, sorted table, with the column list and which columns vary."""
    column = sort if sort is not None and sort in runs.frame.columns else "Trial"
    frame, varying = runs.view(filter or "", column, descending)
    limit = max(1, min(int(limit), PAGE_LIMIT))
    offset = max(0, int(offset))
    page = frame.iloc[offset:offset + limit]
    return {
        "total": runs.total, "matched": len(frame) if runs.complete else runs.total, "offset": offset,
        "limit": limit, "sort": column, "descending": descending, "filter": filter or "",
        "building": not runs.complete,
        "columns": [{"name": c, "kind": runs.kinds[c], "varying": c in varying,
                     **({"direction": _direction(c, runs)} if runs.kinds[c] == "metric" else {})}
                    for c in runs.frame.columns],
        "rows": [[plain(v) for v in row] for row in page.itertuples(index=False, name=None)],
    }


def _direction(column: str, runs: RunsFrame) -> str:
    metric = column.rsplit(".", 1)[0]
    return "last" if column.endswith(".last") else metric_direction(metric)


def trial_status(record: Any) -> str:
    """The status of one trial record (see :data:`STATUSES`)."""
    success = record.get("success")
    if success is not None:
        return "finished" if success else "failed"
    return "running" if _alive(record.get("host"), record.get("pid"), socket.gethostname()) else "abandoned"
