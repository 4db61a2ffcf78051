"""Versioned schema: automatic migration (also by two processes at once), and no writes to a newer schema."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import time

import pytest
import sqlalchemy
from daskperiment_sql import SQLBackend
from daskperiment_sql.migrate import SchemaTooNewError, read_version
from daskperiment_sql.schema import SCHEMA_VERSION

def _open_and_write(args: tuple[str, float]) -> tuple[list[int], int]:
    """In a fresh process: open the old database at ``start`` (so both processes race), run 5 trials, beat."""
    url, start = args
    time.sleep(max(0.0, start - time.time()))
    backend = SQLBackend("old", url)
    ids = [backend.start_trial({"parameters": {"lr": 0.5}, "started": time.time(), "heartbeat": 1.0})
           for _ in range(5)]
    backend.beat(ids, 2_000_000_000.0)
    seen = len(backend.load_trials())
    backend.close()
    return ids, seen


@pytest.mark.parametrize("old_version", range(1, SCHEMA_VERSION))
def test_two_processes_migrate_an_old_database_at_once(database_url: str, old_version: int, old_database) -> None:
    """Both processes wait for one migration (under the lock), then write; old data is moved once."""
    old_database.make(database_url, old_version)
    start = time.time() + 2.0  # both processes are up (spawned) by then
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_open_and_write, [(database_url, start)] * 2))
    ids = sorted(i for chunk, _ in results for i in chunk)
    assert ids == list(range(old_database.trials + 1, old_database.trials + 11))
    engine = sqlalchemy.create_engine(database_url)
    with engine.connect() as conn:
        assert read_version(conn) == SCHEMA_VERSION
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM dp_schema_version").scalar() == 1
        rows = conn.exec_driver_sql("SELECT trial_id, name, kind, value_number, value_text FROM "
                                    "daskperiment_parameters WHERE experiment = 'old' ORDER BY trial_id, name").all()
        beats = conn.exec_driver_sql("SELECT trial_id, heartbeat FROM dp_trials ORDER BY trial_id").all()
        shown = conn.exec_driver_sql("SELECT COUNT(heartbeat) FROM daskperiment_trials WHERE experiment = 'old'").scalar()
        extras = conn.exec_driver_sql("SELECT DISTINCT start_extra FROM dp_trials").scalars().all()
    engine.dispose()
    old = [r for r in rows if r[0] <= old_database.trials]
    assert len(old) == 2 * old_database.trials  # backfilled exactly once
    assert tuple(old[0]) == (1, "lr", "float", 0.01, None) and tuple(old[1]) == (1, "name", "text", None, "n1")
    assert len(rows) == 2 * old_database.trials + 10
    old_beats = [old_database.heartbeat + i if old_version >= 2 else None for i in range(1, old_database.trials + 1)]
    assert [b for _, b in beats] == [*old_beats, *[2_000_000_000.0] * 10]
    assert shown == (old_database.trials if old_version >= 2 else 0) + 10
    assert sorted(extras, key=str) == ([None, '{"shared_steps":"load"}'] if old_version >= 2 else [None])
    records = SQLBackend("old", database_url).load_trials()
    assert [r["trial_id"] for r in records] == list(range(1, old_database.trials + 11))
    assert records[0]["parameters"] == {"lr": 0.01, "name": "n1"}
    if old_version >= 2:
        assert records[0]["heartbeat"] == old_database.heartbeat + 1 and records[0]["shared_steps"] == "load"


def test_a_step_interrupted_midway_runs_again(database_url: str, old_database) -> None:
    """MariaDB commits each DDL statement: a process killed after step 3 added its column but before
    it recorded the version leaves the column; the next process runs the step again cleanly."""
    old_database.make(database_url, 2)
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE dp_trials ADD COLUMN heartbeat {sqlalchemy.Double().compile(dialect=conn.dialect)}")
    backend = SQLBackend("old", database_url)
    assert backend.load_trials([3])[0]["heartbeat"] == old_database.heartbeat + 3
    with engine.connect() as conn:
        assert read_version(conn) == SCHEMA_VERSION
        stored = conn.exec_driver_sql("SELECT heartbeat FROM dp_trials WHERE trial_id = 3").scalar()
        assert stored == old_database.heartbeat + 3
    engine.dispose()
    backend.close()


def test_a_newer_schema_is_an_error_and_nothing_is_written(database_url: str) -> None:
    backend = SQLBackend("x", database_url)
    backend.start_trial({"parameters": {"a": 1}})
    backend.close()
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE dp_schema_version SET version = {SCHEMA_VERSION + 1}")
    newer_process = SQLBackend("x", database_url)
    newer_process._engine = None  # a process that has not checked the schema yet
    from daskperiment_sql import migrate

    migrate._checked.clear()
    with pytest.raises(SchemaTooNewError, match=f"schema version {SCHEMA_VERSION + 1}.*pip install -U"):
        newer_process.start_trial({"parameters": {"a": 2}})
    with pytest.raises(SchemaTooNewError):
        newer_process.load_trials()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM dp_trials").scalar() == 1
    engine.dispose()


def test_a_current_schema_is_never_written_on_open(database_url: str) -> None:
    """Opening and reading write nothing (read-only users): the version row is untouched."""
    SQLBackend("x", database_url).start_trial({"parameters": {}})
    from daskperiment_sql import migrate

    migrate._checked.clear()
    engine = sqlalchemy.create_engine(database_url)
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT COUNT(*) FROM dp_experiments").scalar()
    reader = SQLBackend("not_there", database_url)
    assert reader.load_trials() == [] and reader.last_trial_id() == 0 and reader.metric_keys() == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM dp_experiments").scalar() == before
    engine.dispose()
