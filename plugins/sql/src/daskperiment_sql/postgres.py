"""PostgreSQL's one-statement versions of the two writes every trial makes.

A trial starts and ends with a write (``start_trial``, ``complete_trial``); the generic
path takes three to four statements each, one network round trip apiece. PostgreSQL's
data-modifying ``WITH`` queries do each in one statement (all parts see one snapshot and
commit together), which is what keeps a trial on PostgreSQL within 2× the local backend.
The variable-length parts (the typed parameters, the step hashes) travel as one JSON text
each, expanded by ``json_to_recordset``: the driver sends a string as it is, where it would
adapt a Python list per column element by element (most of the client's time per trial).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from daskperiment.records import OUTCOME_FIELDS, START_FIELDS

from . import codec
from .connection import execute_raw

if TYPE_CHECKING:
    import sqlalchemy

_PARAMETER_COLUMNS = (("name", "text"), ("kind", "text"), ("value_number", "float8"), ("value_text", "text"),
                      ("value_bool", "boolean"), ("value_time", "timestamp"), ("value_json", "text"))


def _start_columns() -> tuple[str, ...]:
    return (*(f for f in START_FIELDS if f in codec.TRIAL_COLUMNS), "start_extra")


def _outcome_columns() -> tuple[str, ...]:
    return (*(f for f in OUTCOME_FIELDS if f in codec.TRIAL_COLUMNS), "outcome_extra", "result_number")


START_TRIAL = f"""
WITH next AS (
    UPDATE dp_experiments SET last_trial_id = last_trial_id + 1 WHERE experiment_pk = %(pk)s
    RETURNING last_trial_id AS trial_id),
trial AS (
    INSERT INTO dp_trials (experiment_pk, trial_id, {', '.join(_start_columns())})
    SELECT %(pk)s, trial_id, {', '.join(f'%({f})s' for f in _start_columns())} FROM next
    RETURNING trial_id),
typed AS (
    INSERT INTO dp_parameters (experiment_pk, trial_id, {', '.join(c for c, _ in _PARAMETER_COLUMNS)})
    SELECT %(pk)s, trial.trial_id, p.* FROM trial,
        json_to_recordset(%(typed)s::json) AS p({', '.join(f'{c} {t}' for c, t in _PARAMETER_COLUMNS)}))
SELECT trial_id FROM trial
"""

COMPLETE_TRIAL = f"""
WITH stored AS (
    INSERT INTO dp_step_hashes AS h (experiment_pk, step, input_hash, output_hash, used)
    SELECT %(pk)s, e.* FROM json_to_recordset(%(entries)s::json)
        AS e(step varchar, input_hash varchar, output_hash varchar, used int8)
    ON CONFLICT (experiment_pk, step, input_hash)
    DO UPDATE SET output_hash = EXCLUDED.output_hash, used = EXCLUDED.used
    -- the output stored before: a statement never sees its own changes, so this primary-key
    -- lookup reads the row as it was (NULL for an input stored now for the first time)
    RETURNING h.step, h.input_hash, (SELECT was.output_hash FROM dp_step_hashes was
        WHERE was.experiment_pk = %(pk)s AND was.step = h.step AND was.input_hash = h.input_hash)
        AS previous),
outcome AS (
    UPDATE dp_trials SET {', '.join(f'{c} = %(o_{c})s' for c in _outcome_columns())}
    WHERE experiment_pk = %(pk)s AND trial_id = %(trial_id)s)
SELECT step, input_hash, previous FROM stored WHERE previous IS NOT NULL
"""


def start_trial(conn: sqlalchemy.Connection, pk: int, record: Mapping[str, Any]) -> int:
    """Allocate the next id and store the trial with its typed parameters: one statement."""
    return int(_execute(conn, START_TRIAL, _start_params(pk, record))[0][0])


def start_trials(conn: sqlalchemy.Connection, pk: int, records: Sequence[Mapping[str, Any]]) -> list[int]:
    """:func:`start_trial` for each record in the caller's transaction, all sent in one round trip
    (the counter row stays locked by the first, so the ids are consecutive)."""
    results = execute_raw(conn, START_TRIAL, [_start_params(pk, record) for record in records], many=True,
                          returning=True)
    return [int(rows[0][0]) for rows in results]


def _start_params(pk: int, record: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"pk": pk, **codec.start_row(record, codec.TRIAL_COLUMNS)}
    params["typed"] = codec.dumps([{column: _json_value(row[column]) for column, _ in _PARAMETER_COLUMNS}
                                   for row in codec.parameter_rows(pk, 0, record.get("parameters"))])
    return params


def _json_value(value: Any) -> Any:
    """A typed parameter column's value in JSON: timestamps as ISO 8601 text, which PostgreSQL reads back exactly."""
    return value.isoformat() if isinstance(value, datetime.datetime) else value


Completion = tuple[int, Mapping[str, Any], list[tuple[str, str, str, int]]]
"""``(trial_id, outcome row, stamped step hashes)`` of one trial to complete."""


def complete_trial(conn: sqlalchemy.Connection, pk: int, trial_id: int, outcome_row: Mapping[str, Any],
                   stamped: list[tuple[str, str, str, int]]) -> dict[tuple[str, str], str]:
    """Store the outcome and the step hashes; return the outputs stored before: one statement."""
    return _previous_outputs(_execute(conn, COMPLETE_TRIAL, _complete_params(pk, (trial_id, outcome_row, stamped))))


def complete_trials(conn: sqlalchemy.Connection, pk: int,
                    completions: Sequence[Completion]) -> list[dict[tuple[str, str], str]]:
    """:func:`complete_trial` for each, in order, in the caller's transaction, all sent in one round
    trip: each statement sees the hashes the ones before it stored."""
    results = execute_raw(conn, COMPLETE_TRIAL, [_complete_params(pk, completion) for completion in completions],
                          many=True, returning=True)
    return [_previous_outputs(rows) for rows in results]


def _complete_params(pk: int, completion: Completion) -> dict[str, Any]:
    trial_id, outcome_row, stamped = completion
    params: dict[str, Any] = {"pk": pk, "trial_id": trial_id, **{f"o_{c}": outcome_row[c] for c in _outcome_columns()}}
    params["entries"] = codec.dumps([{"step": step, "input_hash": input_hash, "output_hash": output, "used": used}
                                     for step, input_hash, output, used in stamped])
    return params


def _previous_outputs(rows: list[Any]) -> dict[tuple[str, str], str]:
    return {(step, input_hash): output for step, input_hash, output in rows}


def _execute(conn: sqlalchemy.Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    """Through psycopg's own cursor: SQLAlchemy adds nothing to a fixed statement on the hot path."""
    return execute_raw(conn, sql, params)
