"""``SQLBackend.read_only()``: what the dashboard and every read of an Experiment go through.

It never writes: no SQLite file, ``-wal``/``-shm`` file, database table or schema row is
created or changed by reading; an old schema is read as it is (a writer migrates it), a
newer one is refused.
"""

from __future__ import annotations

import os
import pathlib
import time

import daskperiment
import numpy as np
import pytest
import sqlalchemy
from daskperiment.errors import BackendError
from daskperiment_sql import SQLBackend
from daskperiment_sql.migrate import SchemaTooNewError, read_version
from daskperiment_sql.schema import SCHEMA_VERSION


def table_names(url: str) -> set[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sqlalchemy.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def schema_version_of(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return read_version(conn)
    finally:
        engine.dispose()


def test_a_missing_sqlite_file_reads_as_empty_and_is_not_created(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'nothing.db'}"
    view = SQLBackend("x", url).read_only()
    assert view.last_trial_id() == 0 and view.load_trials() == [] and view.experiment_ids() == []
    assert view.metric_keys() == [] and view.load_document("code", "c") is None
    assert view.load_history()["trial_id"] == [] and view.load_metrics("m", [1]) == {}
    ex = daskperiment.Experiment("x", backend=url)  # an Experiment reads through such a view
    assert ex.trial_id == 0 and len(ex.get_history()) == 0
    assert list(tmp_path.iterdir()) == []


def test_writes_through_the_view_are_refused_before_anything_is_touched(database_url: str) -> None:
    writer = SQLBackend("w", database_url)
    trial_id = writer.start_trial({"parameters": {"a": 1}, "heartbeat": 5.0})
    writer.save_cached("d", b"cached")
    before = writer.cached_entries()
    view = writer.read_only()
    writes = [lambda: view.start_trial({"parameters": {}}), lambda: view.finish_trial(trial_id, {"success": True}),
              lambda: view.save_metrics(trial_id, "m", np.arange(2), np.ones(2)),
              lambda: view.save_document("code", "c", {}), lambda: view.beat([trial_id], 9.0),
              lambda: view.save_persisted("s", trial_id, b"x"), lambda: view.delete_cached(["d"]),
              lambda: view.save_cached("e", b"x"), lambda: view.swap_step_hashes([("s", "i", "o")]),
              lambda: view.complete_trial(trial_id, {"success": True}, []),
              lambda: view.import_trial({"trial_id": 7, "parameters": {}})]
    for write in writes:
        with pytest.raises(BackendError, match=r"opened read-only \(Backend.read_only\(\)\)"):
            write()
    time.sleep(0.01)
    assert view.load_cached("d") == b"cached"
    assert writer.cached_entries() == before  # reading did not even refresh the entry's recency
    assert writer.load_trials() == view.load_trials() and view.load_trials()[0]["heartbeat"] == 5.0
    assert view.read_only() is view
    writer.close()


def test_no_tables_are_created_by_reading(database_url: str) -> None:
    """An empty database (a server one, or an existing empty SQLite file) stays empty."""
    if database_url.startswith("sqlite"):
        sqlalchemy.create_engine(database_url).dispose()
        pathlib.Path(sqlalchemy.make_url(database_url).database).touch()
    view = SQLBackend("x", database_url).read_only()
    assert view.last_trial_id() == 0 and view.load_trials() == [] and view.metric_keys() == []
    assert view.experiment_ids() == [] and view.cached_entries() == []
    assert table_names(database_url) == set()


def test_an_old_schema_is_read_as_it_is_then_seen_migrated(database_url: str, old_database) -> None:
    """A view neither migrates nor refuses an older database; once a writer migrates it, the
    same long-lived view reads the new column."""
    old_database.make(database_url, 2)
    view = SQLBackend("old", database_url).read_only()
    records = view.load_trials()
    assert len(records) == old_database.trials and records[2]["heartbeat"] == old_database.heartbeat + 3
    assert view.last_trial_id() == old_database.trials and view.experiment_ids() == ["old"]
    assert schema_version_of(database_url) == 2 and "heartbeat" not in {
        c["name"] for c in _columns(database_url, "dp_trials")}
    writer = SQLBackend("old", database_url)
    writer.beat([3], 2_000_000_000.0)  # the writer's first use migrates
    assert schema_version_of(database_url) == SCHEMA_VERSION
    assert view.load_trials([3])[0]["heartbeat"] == 2_000_000_000.0
    writer.close()


def _columns(url: str, table: str) -> list[dict]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(sqlalchemy.inspect(conn).get_columns(table))
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused_by_the_view(database_url: str) -> None:
    SQLBackend("x", database_url).start_trial({"parameters": {}})
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE dp_schema_version SET version = {SCHEMA_VERSION + 1}")
    engine.dispose()
    view = SQLBackend("x", database_url).read_only()
    with pytest.raises(SchemaTooNewError, match="newer than this daskperiment-sql"):
        view.load_trials()


def test_sqlite_view_creates_no_file_and_follows_a_running_writer(tmp_path: pathlib.Path) -> None:
    """Closed database: read as immutable, no ``-wal``/``-shm`` appears. A writer opens it: the
    view's next read goes through the writer's WAL and sees its uncommitted-to-file trials."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    writer = SQLBackend("e", url)
    writer.finish_trial(writer.start_trial({"parameters": {"a": 1}}), {"success": True, "result": 1})
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.db"]
    view = SQLBackend("e", url).read_only()
    assert [r["result"] for r in view.load_trials()] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.db"]
    mtime = os.stat(tmp_path / "e.db").st_mtime_ns
    writer.start_trial({"parameters": {"a": 2}})  # the writer keeps its connection: its WAL stays
    assert (tmp_path / "e.db-wal").exists()
    assert view.last_trial_id() == 2 and [r["parameters"] for r in view.load_trials()] == [{"a": 1}, {"a": 2}]
    writer.close()
    view.close()
    assert os.stat(tmp_path / "e.db").st_mtime_ns >= mtime


def test_the_command_line_looks_without_creating(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``daskperiment history`` reads through the view: an experiment that is not there is
    reported, and neither the database file nor its tables come into being to say so."""
    from daskperiment.cli import main

    missing = tmp_path / "missing.db"
    assert main(["history", "nothere", "--backend", f"sqlite:///{missing}"]) != 0
    assert "No experiment 'nothere'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    writer = SQLBackend("there", f"sqlite:///{missing}")
    writer.start_trial({"parameters": {"a": 1}})
    writer.close()  # its WAL is checkpointed and removed: the reader finds the file alone
    before = sorted(p.name for p in tmp_path.iterdir())
    assert before == ["missing.db"]
    assert main(["history", "there", "--backend", f"sqlite:///{missing}"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before
