"""The tables and views of the SQL backend, for every supported dialect.

Storage tables are prefixed ``dp_``: they are the backend's business and may change
between schema versions. The ``daskperiment_*`` views are the documented, stable way to
query experiments in plain SQL (``docs/sql.md``). Every table holds many experiments:
rows carry ``experiment_pk``, the key of the experiment's row in ``dp_experiments``.

Types are chosen per dialect where the defaults do not fit: MariaDB's ``TEXT``/``BLOB``
stop at 64 KiB (``LONGTEXT``/``LONGBLOB`` instead) and indexed strings need a length
(``VARCHAR(255)``); SQLite's auto-incrementing key must be ``INTEGER``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

#: The schema version this code reads and writes (``dp_schema_version``).
SCHEMA_VERSION = 3

TEXT = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
BLOB = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
NAME = String(255)  # indexed names: experiments, metric keys, steps, parameters
DIGEST = String(128)
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")  # SQLite auto-increments INTEGER keys only

metadata = MetaData()

schema_version = Table("dp_schema_version", metadata, Column("version", Integer, nullable=False))

experiments = Table(
    "dp_experiments", metadata,
    Column("experiment_pk", Integer, primary_key=True, autoincrement=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("last_trial_id", Integer, nullable=False),  # the trial id counter (ids are allocated 1, 2, …)
    Column("created", Double, nullable=False))  # POSIX timestamp


def _trial_columns() -> list[Column[Any]]:
    """The columns of ``dp_trials`` as schema version 1 created them (new objects per call:
    a column belongs to one table)."""
    return [
        Column("experiment_pk", Integer, nullable=False),
        Column("trial_id", Integer, nullable=False, autoincrement=False),
        # TrialStart (daskperiment.records)
        Column("parameters", TEXT),  # JSON object, exactly as recorded (typed copy in dp_parameters)
        Column("seed", BigInteger),
        Column("started", Double),  # POSIX timestamps, exact; the views show them as timestamps
        Column("code", DIGEST),
        Column("environment", DIGEST),
        Column("host", TEXT),
        Column("pid", BigInteger),
        Column("sweep", TEXT),
        Column("result_step", TEXT),
        Column("reproduces", Integer),
        Column("start_extra", TEXT),  # JSON object of start fields this schema version has no column for
        # TrialOutcome
        Column("finished", Double),
        Column("process_time", Double),
        Column("success", Boolean),
        Column("result", TEXT),  # JSON
        Column("result_number", Double),  # the result when it is a number (int or float), for ORDER BY result
        Column("result_pickle", BLOB),
        Column("result_type", TEXT),
        Column("description", TEXT),
        Column("traceback", TEXT),
        Column("steps", TEXT),  # JSON: step name → its calls in this trial
        Column("outcome_extra", TEXT),  # JSON object of outcome fields this schema version has no column for
    ]


trials = Table(
    "dp_trials", metadata, *_trial_columns(),
    # added by schema version 3 (ALTER TABLE: the last column of every database)
    Column("heartbeat", Double),  # POSIX time of the running trial's last sign of life (Backend.beat)
    PrimaryKeyConstraint("experiment_pk", "trial_id"))

#: ``dp_trials`` of schema version 1, which migration step 1 creates (step 3 adds ``heartbeat``).
TRIALS_VERSION_1 = Table("dp_trials", MetaData(), *_trial_columns(), PrimaryKeyConstraint("experiment_pk", "trial_id"))

parameters = Table(
    "dp_parameters", metadata,
    Column("experiment_pk", Integer, nullable=False),
    Column("trial_id", Integer, nullable=False, autoincrement=False),
    Column("name", NAME, nullable=False),
    Column("kind", String(8), nullable=False),  # int, float, bool, text, null, list, dict
    Column("value_number", Double),  # int and float parameters
    Column("value_text", TEXT),  # text parameters
    Column("value_bool", Boolean),  # bool parameters
    Column("value_time", DateTime),  # text parameters that are ISO 8601 dates/times (UTC when zoned)
    Column("value_json", TEXT, nullable=False),  # every parameter, as JSON
    PrimaryKeyConstraint("experiment_pk", "trial_id", "name"),
    Index("dp_parameters_by_value", "experiment_pk", "name", "value_number"))

metrics = Table(
    "dp_metrics", metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),  # save order
    Column("experiment_pk", Integer, nullable=False),
    Column("trial_id", Integer, nullable=False),
    Column("key", NAME, nullable=False),
    Column("n_points", Integer, nullable=False),
    Column("epoch_kind", String(1), nullable=False),  # 'i': int64 epochs, 'f': float64 epochs
    Column("epochs", BLOB, nullable=False),  # n_points raw 8-byte numbers (byte order: see codec)
    Column("vals", BLOB, nullable=False),  # n_points raw 8-byte numbers, as value_kind says
    Column("value_kind", String(1), nullable=False, server_default="f"),  # 'i': int64 values, 'f': float64
    Index("dp_metrics_by_key", "experiment_pk", "key", "trial_id", "seq"),
    Index("dp_metrics_by_trial", "experiment_pk", "trial_id", "key"))

persisted = Table(
    "dp_persisted", metadata,
    Column("experiment_pk", Integer, nullable=False),
    Column("step", NAME, nullable=False),
    Column("trial_id", Integer, nullable=False, autoincrement=False),
    Column("chunk", Integer, nullable=False, autoincrement=False),  # 0, 1, …: pieces of at most CHUNK_BYTES
    Column("data", BLOB, nullable=False),
    PrimaryKeyConstraint("experiment_pk", "step", "trial_id", "chunk"))

cache_entries = Table(  # the step cache: content-addressed outputs of @ex(cache=True) steps
    "dp_cache_entries", metadata,
    Column("experiment_pk", Integer, nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("last_used", Double, nullable=False),  # POSIX time: least-recently-used eviction
    PrimaryKeyConstraint("experiment_pk", "digest"))

cache_chunks = Table(
    "dp_cache_chunks", metadata,
    Column("experiment_pk", Integer, nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("chunk", Integer, nullable=False, autoincrement=False),
    Column("data", BLOB, nullable=False),
    PrimaryKeyConstraint("experiment_pk", "digest", "chunk"))

documents = Table(
    "dp_documents", metadata,
    Column("experiment_pk", Integer, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("body", TEXT, nullable=False),  # JSON
    PrimaryKeyConstraint("experiment_pk", "kind", "digest"))

step_hashes = Table(
    "dp_step_hashes", metadata,
    Column("experiment_pk", Integer, nullable=False),
    Column("step", NAME, nullable=False),
    Column("input_hash", DIGEST, nullable=False),
    Column("output_hash", DIGEST, nullable=False),
    Column("used", BigInteger, nullable=False),  # recency (ns): the oldest inputs are forgotten first
    # no index on ``used``: pruning (every few dozen trials) sorts one step's inputs, and a second index
    # on (experiment_pk, step) tempts the planner away from the primary key in every trial's lookup
    PrimaryKeyConstraint("experiment_pk", "step", "input_hash"))

#: Tables of schema version 1 (storage; ``dp_trials`` as it was then), and those version 2 added
#: (the typed query layer). Version 3 added a column (``dp_trials.heartbeat``), no table.
VERSION_1_TABLES = (schema_version, experiments, TRIALS_VERSION_1, metrics, persisted, documents, step_hashes,
                    cache_entries, cache_chunks)
VERSION_2_TABLES = (parameters,)

#: Raw bytes per row of ``dp_persisted``: far below MariaDB's default ``max_allowed_packet`` (16 MiB).
CHUNK_BYTES = 4 << 20
#: Points per row of ``dp_metrics`` (2 MiB of numbers per row, for the same reason).
METRIC_CHUNK_POINTS = 1 << 17

# ---- views (schema version 2) ------------------------------------------------------------

#: ``POSIX seconds -> timestamp`` per dialect (PostgreSQL: timestamptz; MariaDB: session time zone;
#: SQLite: UTC text with milliseconds).
_TIMESTAMP = {
    "postgresql": "to_timestamp({})",
    "mysql": "FROM_UNIXTIME({})",
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f', {}, 'unixepoch')",
}

VIEW_NAMES = ("daskperiment_experiments", "daskperiment_trials", "daskperiment_parameters",
              "daskperiment_metric_batches", "daskperiment_metrics")

#: PostgreSQL decodes the big-endian numbers of a metric batch in SQL (see :mod:`.codec`).
POSTGRES_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION daskperiment_int8_at(data bytea, i integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ('x' || encode(substring(data FROM 8 * i + 1 FOR 8), 'hex'))::bit(64)::bigint $$""",
    """CREATE OR REPLACE FUNCTION daskperiment_float8_at(data bytea, i integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT CASE WHEN e = 2047 THEN CASE WHEN m <> 0 THEN 'NaN'::float8
                                             WHEN s = 1 THEN '-Infinity'::float8 ELSE 'Infinity'::float8 END
                      WHEN e = 0 THEN (1 - 2 * s) * (m * 2.0::float8 ^ -1074)
                      ELSE (1 - 2 * s) * (1 + m * 2.0::float8 ^ -52) * 2.0::float8 ^ (e - 1023) END
          FROM (SELECT (b >> 63) & 1 AS s, ((b >> 52) & 2047)::integer AS e, b & 4503599627370495 AS m
                FROM (SELECT daskperiment_int8_at(data, i) AS b) AS bits) AS parts $$""",
)


def view_statements(dialect: str, version: int = SCHEMA_VERSION) -> list[str]:
    """``CREATE VIEW`` statements of the documented views as of schema ``version`` (2: the first
    views; 3: ``daskperiment_trials`` gains ``heartbeat``). ``dialect``: SQLAlchemy's dialect name.

    Versioned because each migration step creates the views of its own version: a step run
    on an older database must not name a column a later step adds.
    """
    family = "mysql" if dialect in ("mysql", "mariadb") else dialect
    ts = _TIMESTAMP[family].format
    heartbeat = f", {ts('t.heartbeat')} AS heartbeat" if version >= 3 else ""
    statements = [
        f"""CREATE VIEW daskperiment_experiments AS
        SELECT e.name AS experiment, e.last_trial_id AS last_trial_id, {ts('e.created')} AS created
        FROM dp_experiments e""",
        f"""CREATE VIEW daskperiment_trials AS
        SELECT e.name AS experiment, t.trial_id AS trial_id,
               CASE WHEN t.finished IS NULL THEN 'unfinished' WHEN t.success THEN 'success' ELSE 'failed' END
                   AS status,
               t.success AS success, t.result_number AS result, t.result AS result_json,
               t.result_type AS result_type, t.description AS description,
               {ts('t.started')} AS started, {ts('t.finished')} AS finished, t.process_time AS process_time,
               t.seed AS seed, t.sweep AS sweep, t.host AS host, t.pid AS pid, t.parameters AS parameters,
               t.code AS code, t.environment AS environment, t.traceback AS traceback{heartbeat}
        FROM dp_trials t JOIN dp_experiments e ON e.experiment_pk = t.experiment_pk""",
        """CREATE VIEW daskperiment_parameters AS
        SELECT e.name AS experiment, p.trial_id AS trial_id, p.name AS name, p.kind AS kind,
               p.value_number AS value_number, p.value_text AS value_text, p.value_bool AS value_bool,
               p.value_time AS value_time, p.value_json AS value_json
        FROM dp_parameters p JOIN dp_experiments e ON e.experiment_pk = p.experiment_pk""",
        """CREATE VIEW daskperiment_metric_batches AS
        SELECT e.name AS experiment, m.trial_id AS trial_id, m.key AS metric, m.seq AS batch,
               m.n_points AS n_points
        FROM dp_metrics m JOIN dp_experiments e ON e.experiment_pk = m.experiment_pk""",
    ]
    if family == "postgresql":
        statements += [
            *POSTGRES_FUNCTIONS,
            """CREATE VIEW daskperiment_metrics AS
            SELECT e.name AS experiment, m.trial_id AS trial_id, m.key AS metric, m.seq AS batch, i AS point,
                   CASE WHEN m.epoch_kind = 'i' THEN daskperiment_int8_at(m.epochs, i)::float8
                        ELSE daskperiment_float8_at(m.epochs, i) END AS epoch,
                   CASE WHEN m.value_kind = 'i' THEN daskperiment_int8_at(m.vals, i)::float8
                        ELSE daskperiment_float8_at(m.vals, i) END AS value
            FROM dp_metrics m JOIN dp_experiments e ON e.experiment_pk = m.experiment_pk
                 CROSS JOIN LATERAL generate_series(0, m.n_points - 1) AS i""",
        ]
    return statements


def drop_view_statements(dialect: str) -> list[str]:
    """Drop the views (before re-creating them in a migration that changes them)."""
    return [f"DROP VIEW IF EXISTS {name}" for name in VIEW_NAMES]
