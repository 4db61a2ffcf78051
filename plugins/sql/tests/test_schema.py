"""Versioned schema: automatic migration (also by two processes at once), and no writes to a newer schema."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import time

import pytest
import sqlalchemy
from daskperiment_sql import SQLBackend
from daskperiment_sql.migrate import SchemaTooNewError, ensure_schema, read_version
from daskperiment_sql.schema import SCHEMA_VERSION

OLD_TRIALS = 30


def make_version_1_database(url: str) -> None:
    """A database as the first schema version left it: trials with JSON parameters, no typed table, no views."""
    engine = sqlalchemy.create_engine(url)
    ensure_schema(engine, url, target=1)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO dp_experiments (name, last_trial_id, created) VALUES ('old', {OLD_TRIALS}, 0)")
        pk = conn.exec_driver_sql("SELECT experiment_pk FROM dp_experiments WHERE name = 'old'").scalar()
        conn.execute(sqlalchemy.text(
            "INSERT INTO dp_trials (experiment_pk, trial_id, parameters, seed, started, finished, success, result) "
            "VALUES (:pk, :trial_id, :parameters, 1, 0, 1, :success, :result)"),
            [{"pk": pk, "trial_id": i, "parameters": json.dumps({"lr": i / 100, "name": f"n{i}"}), "success": True,
              "result": json.dumps(i)} for i in range(1, OLD_TRIALS + 1)])
    engine.dispose()


def _open_and_write(args: tuple[str, float]) -> tuple[list[int], int]:
    """In a fresh process: open the old database at ``start`` (so both processes race) and run 5 trials."""
    url, start = args
    time.sleep(max(0.0, start - time.time()))
    backend = SQLBackend("old", url)
    ids = [backend.start_trial({"parameters": {"lr": 0.5}, "started": time.time()}) for _ in range(5)]
    seen = len(backend.load_trials())
    backend.close()
    return ids, seen


def test_two_processes_migrate_an_old_database_at_once(database_url: str) -> None:
    """Both processes wait for one migration (under the lock), then write; parameters are backfilled once."""
    make_version_1_database(database_url)
    start = time.time() + 2.0  # both processes are up (spawned) by then
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_open_and_write, [(database_url, start)] * 2))
    ids = sorted(i for chunk, _ in results for i in chunk)
    assert ids == list(range(OLD_TRIALS + 1, OLD_TRIALS + 11))
    engine = sqlalchemy.create_engine(database_url)
    with engine.connect() as conn:
        assert read_version(conn) == SCHEMA_VERSION
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM dp_schema_version").scalar() == 1
        rows = conn.exec_driver_sql("SELECT trial_id, name, kind, value_number, value_text FROM "
                                    "daskperiment_parameters WHERE experiment = 'old' ORDER BY trial_id, name").all()
    engine.dispose()
    old = [r for r in rows if r[0] <= OLD_TRIALS]
    assert len(old) == 2 * OLD_TRIALS  # backfilled exactly once
    assert tuple(old[0]) == (1, "lr", "float", 0.01, None) and tuple(old[1]) == (1, "name", "text", None, "n1")
    assert len(rows) == 2 * OLD_TRIALS + 10
    history = SQLBackend("old", database_url).load_history()
    assert history["trial_id"] == list(range(1, OLD_TRIALS + 11))
    assert history["parameters"][0] == {"lr": 0.01, "name": "n1"}


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
