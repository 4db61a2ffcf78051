"""Plain-data encodings of what the SQL backend stores (nothing here is ever pickled).

* Metadata is JSON text, exactly as recorded; parameters are *also* stored typed, one
  row per parameter (:func:`parameter_rows`), so that plain SQL can filter numbers as
  numbers, text as text, booleans and timestamps.
* A metric batch is two raw arrays of 8-byte numbers: the epochs (int64 or float64, as
  ``epoch_kind`` says) and the values (float64). On PostgreSQL they are stored
  big-endian, because a SQL function can then decode them (``('x' || hex)::bit(64)``
  reads bits most significant first) and the ``daskperiment_metrics`` view expands
  batches into points; SQLite and MariaDB have no such cast and store them little-endian
  like the local backend (numpy's native order on every platform we run on).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from daskperiment.records import JSON_FIELDS, OUTCOME_FIELDS, START_FIELDS, MetricSeries

#: A text parameter that looks like an ISO 8601 date or date-time also gets ``value_time``.
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def loads_column(texts: list[str | None]) -> list[Any]:
    """Decode a column of JSON texts with one ``json.loads`` (about 10× faster than one per row)."""
    values: list[Any] = json.loads("[" + ",".join(t if t is not None else "null" for t in texts) + "]")
    return values


#: The trial fields this schema version has a column for (the others go to the ``*_extra`` JSON columns).
TRIAL_COLUMNS = frozenset({"result_pickle", "success", "parameters", "seed", "started", "code", "environment", "host",
                           "pid", "sweep", "result_step", "reproduces", "finished", "process_time", "result",
                           "result_type", "description", "traceback", "steps", "heartbeat"})

#: Free-text fields of a trial: PostgreSQL text cannot hold NUL, so it is stored as U+FFFD there.
FREE_TEXT_FIELDS = ("host", "sweep", "result_type", "description", "traceback")


def text_safe(field: str, value: Any) -> Any:
    """``value`` with NUL characters replaced when ``field`` is free text (see :data:`FREE_TEXT_FIELDS`)."""
    if field in FREE_TEXT_FIELDS and type(value) is str and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def trial_row(record: Mapping[str, Any], fields: tuple[str, ...], columns: frozenset[str],
              extra_column: str) -> dict[str, Any]:
    """Column values of ``fields`` of a record: JSON fields as text, free text NUL-safe; fields
    without a column in this schema version go to ``extra_column`` as one JSON object (they
    round-trip, and a later schema version can give them a column)."""
    row: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for field in fields:
        value = record.get(field)
        if field not in columns:
            if value is not None:
                extra[field] = value
            continue
        row[field] = dumps(value) if field in JSON_FIELDS else text_safe(field, value)
    row[extra_column] = dumps(extra) if extra else None
    return row


def start_row(record: Mapping[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    return trial_row(record, START_FIELDS, columns, "start_extra")


def outcome_row(outcome: Mapping[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    row = trial_row(outcome, OUTCOME_FIELDS, columns, "outcome_extra")
    row["result_number"] = result_number(outcome.get("result"))
    return row


def result_number(result: Any) -> float | None:
    """The result as a number for ``ORDER BY result``, when it is one (booleans are not)."""
    if type(result) in (int, float) and (type(result) is float or abs(result) < 2**63):
        return float(result)
    return None


def _as_time(text: str) -> datetime.datetime | None:
    if not _ISO_TIME.match(text):
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def parameter_rows(experiment_pk: int, trial_id: int, parameters: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One typed row per parameter for ``dp_parameters``."""
    rows = []
    for name, value in (parameters or {}).items():
        row: dict[str, Any] = {"experiment_pk": experiment_pk, "trial_id": trial_id, "name": name,
                               "value_number": None, "value_text": None, "value_bool": None, "value_time": None,
                               "value_json": dumps(value)}
        kind = type(value)
        if kind is bool:
            row.update(kind="bool", value_bool=value)
        elif kind is int:
            row.update(kind="int", value_number=float(value) if abs(value) < 2**1023 else None)
        elif kind is float:
            row.update(kind="float", value_number=value if math.isfinite(value) else None)
        elif kind is str:  # PostgreSQL text cannot hold NUL: such a value is in value_json only
            row.update(kind="text", value_text=None if "\x00" in value else value, value_time=_as_time(value))
        elif value is None:
            row.update(kind="null")
        else:
            row.update(kind="list" if kind is list else "dict")
        rows.append(row)
    return rows


def metric_chunks(epochs: np.ndarray, values: np.ndarray, chunk_points: int,
                  big_endian: bool) -> Iterator[tuple[int, str, bytes, bytes, str]]:
    """``(n_points, epoch_kind, epoch bytes, value bytes, value_kind)`` for each row of a batch
    (integer values stay int64, everything else is float64)."""
    kind = "f" if np.asarray(epochs).dtype.kind == "f" else "i"
    value_kind = "i" if np.asarray(values).dtype.kind in "iu" else "f"
    order = ">" if big_endian else "<"
    epochs = np.ascontiguousarray(epochs, dtype=f"{order}{kind}8")
    values = np.ascontiguousarray(values, dtype=f"{order}{value_kind}8")
    for start in range(0, len(values), chunk_points):
        stop = start + chunk_points
        yield (len(values[start:stop]), kind, epochs[start:stop].tobytes(), values[start:stop].tobytes(),
               value_kind)


def decode_metrics(rows: list[tuple[int, str, bytes, bytes, str]], big_endian: bool) -> dict[int, MetricSeries]:
    """``(trial_id, epoch_kind, epochs, vals, value_kind)`` rows in save order → native-order series per trial."""
    order = ">" if big_endian else "<"
    parts: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for trial_id, kind, epochs, vals, value_kind in rows:
        e, v = parts.setdefault(trial_id, ([], []))
        e.append(np.frombuffer(epochs, dtype=f"{order}{kind}8"))
        v.append(np.frombuffer(vals, dtype=f"{order}{value_kind}8"))
    series = {}
    for trial_id, (e, v) in parts.items():
        kinds = {a.dtype.kind for a in e}
        epoch_dtype = np.float64 if "f" in kinds else np.int64
        value_dtype = np.float64 if any(a.dtype.kind == "f" for a in v) else np.int64
        series[trial_id] = MetricSeries(np.concatenate(e).astype(epoch_dtype, copy=False),
                                        np.concatenate(v).astype(value_dtype, copy=False))
    return series
