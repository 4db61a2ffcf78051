"""A PostgreSQL server killed and restarted between and during trials: a clear error within
seconds, nothing stored before is damaged, and the next trial after the restart works."""

from __future__ import annotations

import time
from collections.abc import Iterator

import daskperiment
import pytest
from daskperiment.errors import BackendUnavailableError


@pytest.fixture
def own_postgresql() -> Iterator[object]:
    """A private server this test may kill (committed data survives a kill); missing: skip, or fail on CI."""
    from pytest_daskperiment.fixtures import postgresql_server_or_skip

    server = postgresql_server_or_skip()
    if server.external:
        pytest.skip("kills and restarts its own PostgreSQL server; not done with an external one")
    with server.client() as client:
        client.execute("CREATE DATABASE crash")
    yield server
    server.close()


def experiment(url: str, on_step=None) -> tuple[daskperiment.Experiment, object]:
    ex = daskperiment.Experiment("crash", backend=url)
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        if on_step is not None:
            on_step(a)
        return a * 2

    @ex.result
    def score(x):
        ex.save_metric("m", epoch=0, value=float(x))
        return x + 1

    return ex, score(prepare(a))


def assert_intact(ex: daskperiment.Experiment, n: int) -> None:
    history = ex.get_history()
    finished = history[history["Success"] == True]
    assert list(finished["a"])[:n] == list(range(n)) and list(finished["Result"])[:n] == [a * 2 + 1 for a in range(n)]
    assert ex.get_persisted("prepare", 1) == 0
    assert list(ex.load_metric("m", trial_id=1)[1]) == [0.0]


def test_server_killed_and_restarted_between_trials(own_postgresql) -> None:
    url = own_postgresql.database_url("crash")
    ex, result = experiment(url)
    for a in range(2):
        ex.set_parameters(a=a)
        result.compute(seed=1, scheduler="sync")
    own_postgresql.kill()
    ex.set_parameters(a=2)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="cannot reach the database.*next call reconnects"):
        result.compute(seed=1, scheduler="sync")
    assert time.monotonic() - t0 < 10
    own_postgresql.start()
    result.compute(seed=1, scheduler="sync")  # the pooled connections died with the server: replaced
    assert ex.trial_id == 3
    assert_intact(ex, 3)


def test_server_killed_during_a_trial(own_postgresql) -> None:
    url = own_postgresql.database_url("crash")
    kill_at = {"a": 1}

    def maybe_kill(a: int) -> None:
        if a == kill_at["a"]:
            kill_at["a"] = None
            own_postgresql.kill()

    ex, result = experiment(url, maybe_kill)
    ex.set_parameters(a=0)
    result.compute(seed=1, scheduler="sync")
    ex.set_parameters(a=1)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="cannot reach the database"):
        result.compute(seed=1, scheduler="sync")
    assert time.monotonic() - t0 < 10
    own_postgresql.start()
    ex.set_parameters(a=1)
    result.compute(seed=1, scheduler="sync")
    history = ex.get_history()
    assert list(history.index) == [1, 2, 3]
    died = ex.backend.load_trials([2])[0]  # started before the kill, its outcome could not be stored
    assert died["parameters"] == {"a": 1} and died["success"] is None
    assert list(history.loc[[1, 3], "Result"]) == [1, 3]
    assert_intact(ex, 1)


def test_connections_the_server_closed_are_replaced_before_use(postgresql_url: str) -> None:
    """The connection a trial's writes keep (and the pooled ones) is checked before each use:
    after the server ended every session (an idle timeout, a failover, an administrator),
    the next trial starts and completes without an error and without a retry."""
    import psycopg
    import sqlalchemy
    from daskperiment_sql import SQLBackend

    backend = SQLBackend("held", postgresql_url)
    first = backend.start_trial({"parameters": {"a": 1}})
    backend.complete_trial(first, {"success": True, "result": 1}, [("s", "i", "o")])
    admin = sqlalchemy.make_url(postgresql_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        ended = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                             "current_database() AND pid <> pg_backend_pid()").fetchall()
    assert ended and all(row[0] for row in ended)
    time.sleep(0.2)  # the server's goodbye reaches the sockets
    second = backend.start_trial({"parameters": {"a": 2}})
    assert second == first + 1
    assert backend.complete_trial(second, {"success": True, "result": 2}, [("s", "i", "p")]) == ["o"]
    assert [r["result"] for r in backend.load_trials()] == [1, 2]
    backend.close()
