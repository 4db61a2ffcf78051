"""The hot-path writes as fixed statements through the driver's cursor (every dialect).

The two writes every trial makes (``start_trial``, ``complete_trial``) are on the hot path;
building them with SQLAlchemy expressions costs more than SQLite takes to run them. These
are the same statements, written once per dialect's parameter style, run inside the
caller's transaction (PostgreSQL starts and completes a trial with the one-statement
versions in :mod:`.postgres`; it uses these for the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daskperiment.records import OUTCOME_FIELDS, START_FIELDS

from . import codec
from .connection import execute_raw

if TYPE_CHECKING:
    import sqlalchemy

_START = (*(f for f in START_FIELDS if f in codec.TRIAL_COLUMNS), "start_extra")
_OUTCOME = (*(f for f in OUTCOME_FIELDS if f in codec.TRIAL_COLUMNS), "outcome_extra", "result_number")
_PARAMETER_COLUMNS = ("experiment_pk", "trial_id", "name", "kind", "value_number", "value_text", "value_bool",
                      "value_time", "value_json")
_HASH_COLUMNS = ("experiment_pk", "step", "input_hash", "output_hash", "used")


class Statements:
    """The statements in one dialect's parameter style (``:name`` for sqlite3, ``%(name)s`` for psycopg and PyMySQL)."""

    def __init__(self, dialect: str) -> None:
        self.named = dialect == "sqlite"
        mark = self.mark
        self.bump = f"UPDATE dp_experiments SET last_trial_id = last_trial_id + 1 WHERE experiment_pk = {mark('pk')}"
        self.last = f"SELECT last_trial_id FROM dp_experiments WHERE experiment_pk = {mark('pk')}"
        self.insert_trial = (f"INSERT INTO dp_trials (experiment_pk, trial_id, {', '.join(_START)}) VALUES "
                             f"({', '.join(mark(c) for c in ('pk', 'trial_id', *_START))})")
        self.insert_parameters = (f"INSERT INTO dp_parameters ({', '.join(_PARAMETER_COLUMNS)}) VALUES "
                                  f"({', '.join(mark(c) for c in _PARAMETER_COLUMNS)})")
        self.update_outcome = (f"UPDATE dp_trials SET {', '.join(f'{c} = {mark(c)}' for c in _OUTCOME)} "
                               f"WHERE experiment_pk = {mark('pk')} AND trial_id = {mark('trial_id')}")
        upsert = ("ON CONFLICT (experiment_pk, step, input_hash) DO UPDATE SET output_hash = excluded.output_hash, "
                  "used = excluded.used" if dialect in ("sqlite", "postgresql") else
                  "ON DUPLICATE KEY UPDATE output_hash = VALUES(output_hash), used = VALUES(used)")
        self.upsert_hashes = (f"INSERT INTO dp_step_hashes ({', '.join(_HASH_COLUMNS)}) VALUES "
                              f"({', '.join(mark(c) for c in _HASH_COLUMNS)}) {upsert}")

    def mark(self, name: str) -> str:
        """The placeholder of parameter ``name``."""
        return f":{name}" if self.named else f"%({name})s"


_statements: dict[str, Statements] = {}


def statements(conn: sqlalchemy.Connection) -> Statements:
    name = conn.dialect.name
    if name not in _statements:
        _statements[name] = Statements(name)
    return _statements[name]


def start_trial(conn: sqlalchemy.Connection, pk: int, record: Mapping[str, Any]) -> int:
    """Increment the counter (its row stays locked until commit) and store the trial and its typed parameters."""
    sql = statements(conn)
    execute_raw(conn, sql.bump, {"pk": pk})
    trial_id = int(execute_raw(conn, sql.last, {"pk": pk})[0][0])
    execute_raw(conn, sql.insert_trial, {"pk": pk, "trial_id": trial_id, **codec.start_row(record, codec.TRIAL_COLUMNS)})
    rows = codec.parameter_rows(pk, trial_id, record.get("parameters"))
    if rows:
        execute_raw(conn, sql.insert_parameters, rows, many=True)
    return trial_id


def store_outcome(conn: sqlalchemy.Connection, pk: int, trial_id: int, outcome_row: Mapping[str, Any]) -> None:
    execute_raw(conn, statements(conn).update_outcome, {"pk": pk, "trial_id": trial_id, **outcome_row})


def swap_hashes(conn: sqlalchemy.Connection, pk: int,
                stamped: list[tuple[str, str, str, int]]) -> dict[tuple[str, str], str]:
    """Upsert ``(step, input, output, used)`` rows; return the outputs stored before."""
    sql = statements(conn)
    known: dict[tuple[str, str], str] = {}
    for start in range(0, len(stamped), 200):
        batch = stamped[start:start + 200]
        params: dict[str, Any] = {"pk": pk}
        conditions = []
        for i, (step, input_hash, _, _) in enumerate(batch):
            params[f"s{i}"], params[f"i{i}"] = step, input_hash
            conditions.append(f"(step = {sql.mark(f's{i}')} AND input_hash = {sql.mark(f'i{i}')})")
        query = (f"SELECT step, input_hash, output_hash FROM dp_step_hashes WHERE experiment_pk = {sql.mark('pk')} "
                 f"AND ({' OR '.join(conditions)})")
        known.update(((s, i), o) for s, i, o in execute_raw(conn, query, params))
    execute_raw(conn, sql.upsert_hashes, [{"experiment_pk": pk, "step": s, "input_hash": i, "output_hash": o,
                                           "used": u} for s, i, o, u in stamped], many=True)
    return known
