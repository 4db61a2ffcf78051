"""Databases for the SQL backend tests: real ones, never mocks.

``postgresql_url`` / ``mariadb_url`` (a fresh database per test on a private server on
127.0.0.1) come from the ``pytest-daskperiment`` plugin; ``sqlite_url`` is a file per test.
``database_url`` runs a test on each dialect.
"""

from __future__ import annotations

import json
import pytest
import sqlalchemy
from daskperiment_sql import codec, schema
from daskperiment_sql.connection import _engines, release_held
from daskperiment_sql.migrate import ensure_schema

OLD_TRIALS = 30
OLD_HEARTBEAT = 1_700_000_000.5


def _make_old_database(url: str, version: int) -> None:
    """A database as schema ``version`` left it, with trials written as that version's code wrote them.

    Version 1: JSON parameters only (no typed table, no views). Version 2: typed parameters
    too, and each trial's heartbeat (a start field without a column then) in ``start_extra``
    beside another such field.
    """
    engine = sqlalchemy.create_engine(url)
    ensure_schema(engine, url, target=version)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO dp_experiments (name, last_trial_id, created) VALUES ('old', {OLD_TRIALS}, 0)")
        pk = conn.exec_driver_sql("SELECT experiment_pk FROM dp_experiments WHERE name = 'old'").scalar()
        rows = [{"pk": pk, "trial_id": i, "parameters": json.dumps({"lr": i / 100, "name": f"n{i}"}), "success": True,
                 "result": json.dumps(i),
                 "extra": json.dumps({"heartbeat": OLD_HEARTBEAT + i, "shared_steps": "load"}) if version >= 2 else None}
                for i in range(1, OLD_TRIALS + 1)]
        conn.execute(sqlalchemy.text(
            "INSERT INTO dp_trials (experiment_pk, trial_id, parameters, seed, started, finished, success, result, "
            "start_extra) VALUES (:pk, :trial_id, :parameters, 1, 0, 1, :success, :result, :extra)"), rows)
        if version >= 2:
            conn.execute(schema.parameters.insert(), [typed for row in rows for typed in codec.parameter_rows(
                pk, row["trial_id"], json.loads(row["parameters"]))])
    engine.dispose()


class OldDatabase:
    """What the ``old_database`` fixture gives: ``make(url, version)`` and what it stored."""

    trials = OLD_TRIALS
    heartbeat = OLD_HEARTBEAT  #: trial i's heartbeat is heartbeat + i (versions 2 and later)
    make = staticmethod(_make_old_database)


@pytest.fixture
def old_database() -> OldDatabase:
    return OldDatabase()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'experiments.db'}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of each dialect in turn."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(autouse=True)
def _dispose_engines():
    """Close the pooled connections tests leave behind (their databases are dropped after them)."""
    yield
    for engine in list(_engines.values()):
        release_held(engine)
        engine.dispose()
