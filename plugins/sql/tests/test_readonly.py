"""A PostgreSQL role with SELECT only reads everything, using the grants docs/sql.md gives."""

from __future__ import annotations

import pathlib
import re

import daskperiment
import psycopg
import pytest
import sqlalchemy
from daskperiment.errors import BackendError

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "sql.md"


def grant_read_only(url: str, password: str) -> str:
    """Run the documented grants for ``url``'s database; the reader's URL."""
    grants = next(b for b in re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.DOTALL) if b.startswith("CREATE ROLE"))
    parts = sqlalchemy.make_url(url)
    sql = grants.replace("experiments", parts.database).replace("change-me", password)
    with psycopg.connect(parts.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as conn:
        for statement in filter(str.strip, sql.split(";")):
            if statement.strip().startswith("CREATE ROLE"):
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'reader'").fetchone()
                if exists:
                    conn.execute(f"ALTER ROLE reader PASSWORD '{password}'")
                    continue
            conn.execute(statement)
    return parts.set(username="reader", password=password).render_as_string(hide_password=False)


def test_read_only_role_reads_history_metrics_persisted_code_and_views(postgresql_url: str) -> None:
    ex = daskperiment.Experiment("shared", backend=postgresql_url)
    a = ex.parameter("a")

    @ex.persist
    def double(a):
        return {"twice": 2 * a}

    @ex.result
    def score(d):
        for epoch in range(5):
            ex.save_metric("loss", epoch=epoch, value=epoch / d["twice"])
        return d["twice"]

    ex.set_parameters(a=3)
    score(double(a)).compute(seed=1)
    ex.backend.close()

    reader_url = grant_read_only(postgresql_url, "read-only-secret")
    from daskperiment_sql import migrate

    migrate._checked.clear()  # as a new process of the reader would
    view = daskperiment.Experiment("shared", backend=reader_url)
    history = view.get_history(verbose=True)
    assert list(history.index) == [1] and history.loc[1, "a"] == 3
    assert list(view.load_metric("loss", trial_id=1)[1]) == [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6]
    assert view.get_persisted("double", 1) == {"twice": 6}
    assert "def double" in view.get_code(trial_id=1)
    assert view.get_environment(trial_id=1)
    engine = sqlalchemy.create_engine(reader_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT status, result FROM daskperiment_trials").all() == [("success", 6.0)]
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM daskperiment_metrics").scalar() == 5
    engine.dispose()
    with pytest.raises(BackendError, match="permission denied.*read but not write") as info:
        view.backend.start_trial({"parameters": {"a": 1}})
    assert "read-only-secret" not in str(info.value)
    view.backend.close()


def test_read_only_role_reads_an_old_schema_without_migrating_it(postgresql_url: str, old_database) -> None:
    """An Experiment of a SELECT-only role reads a database a newer daskperiment-sql has not migrated
    yet (its reads go through read_only(), which migrates nothing): history and heartbeats."""
    old_database.make(postgresql_url, 2)
    reader_url = grant_read_only(postgresql_url, "read-only-secret")
    view = daskperiment.Experiment("old", backend=reader_url)
    history = view.get_history()
    assert list(history.index) == list(range(1, old_database.trials + 1)) and history.loc[1, "lr"] == 0.01
    assert view.backend.read_only().load_trials([2])[0]["heartbeat"] == old_database.heartbeat + 2
    engine = sqlalchemy.create_engine(postgresql_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM dp_schema_version").scalar() == 2
    engine.dispose()
    view.backend.close()
