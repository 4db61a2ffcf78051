"""Server down, killed between or during trials, restarted: clear errors, nothing lost, recovery."""

from __future__ import annotations

import logging

import daskperiment
import pytest
import redis
from daskperiment.errors import BackendUnavailableError
from pytest_daskperiment import free_port
from daskperiment_redis import RedisBackend


def experiment(uri_or_pool, on_step=None) -> tuple[daskperiment.Experiment, object]:
    """An experiment whose step may call ``on_step`` (to kill the server mid-trial)."""
    ex = daskperiment.Experiment("crash", backend=uri_or_pool)
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        return a

    @ex.result
    def score(x):
        ex.save_metric("m", epoch=0, value=x)
        if on_step is not None:
            on_step(x)
        ex.save_metric("m", epoch=1, value=x)
        return x * 10

    return ex, score(prepare(a))


def run(ex, result, a: int):
    ex.set_parameters(a=a)
    return result.compute(seed=1, scheduler="sync")


def check_intact(ex, trial_ids) -> None:
    history = ex.get_history()
    for trial_id in trial_ids:
        assert history.loc[trial_id, "Success"] == True
        assert ex.get_persisted("prepare", trial_id) == history.loc[trial_id, "a"]
        assert list(ex.load_metric("m", trial_id)[trial_id]) == [history.loc[trial_id, "a"]] * 2


def test_server_down_error_names_uri_cause_and_fix():
    port = free_port()  # nothing listens there
    with pytest.raises(BackendUnavailableError) as info:
        daskperiment.Experiment("nobody_home", backend=f"redis://:hunter2@127.0.0.1:{port}/0")
    message = str(info.value)
    assert message.startswith(f"RedisBackend('redis://:***@127.0.0.1:{port}/0'): cannot reach the Redis server")
    assert "Connection refused" in message  # the cause
    assert "redis-server is running" in message and "nothing already stored was damaged" in message  # the fix
    assert "hunter2" not in message


def test_killed_and_restarted_between_trials(durable_server):
    ex, result = experiment(durable_server.uri)
    assert run(ex, result, 1) == 10
    durable_server.kill()
    with pytest.raises(BackendUnavailableError, match="cannot reach the Redis server"):
        run(ex, result, 2)
    with pytest.raises(BackendUnavailableError):
        ex.get_history()
    durable_server.start()
    check_intact(ex, [1])
    assert run(ex, result, 3) == 30  # pooled connections to the dead server were replaced
    assert ex.trial_id == 2  # the refused trial never got an id
    check_intact(ex, [1, 2])


def test_killed_during_a_trial(durable_server, caplog):
    """The trial fails with a clear error; earlier trials stay intact; the next trial works."""
    caplog.set_level(logging.ERROR)
    ex, result = experiment(durable_server.uri,
                            on_step=lambda x: durable_server.kill() if x == 2 else None)
    run(ex, result, 1)
    with pytest.raises(BackendUnavailableError, match=r"RedisBackend\('redis://127\.0\.0\.1:\d+/0'\)"):
        run(ex, result, 2)
    durable_server.start()
    check_intact(ex, [1])
    (interrupted,) = ex.backend.load_trials([2])
    assert interrupted["parameters"] == {"a": 2} and interrupted["finished"] is None  # reads as unfinished
    assert run(ex, result, 3) == 30
    assert ex.trial_id == 3
    check_intact(ex, [1, 3])


def test_restarted_during_a_trial_the_trial_completes(durable_server, monkeypatch):
    """A restart between two writes of one trial: the next write reconnects on its own.

    The background metric flush is kept out of this test: one that fell inside the restart
    would fail the trial by design (a write during an outage; test_killed_during_a_trial),
    which a loaded machine made happen here now and then.
    """
    monkeypatch.setattr("daskperiment.metrics._flusher.watch", lambda buffer: None)
    ex, result = experiment(durable_server.uri,
                            on_step=lambda x: durable_server.restart() if x == 2 else None)
    run(ex, result, 1)
    assert run(ex, result, 2) == 20
    check_intact(ex, [1, 2])


def test_user_pool_recovers_from_dead_connections(durable_server):
    pool = redis.ConnectionPool.from_url(durable_server.uri)
    ex, result = experiment(pool)
    run(ex, result, 1)
    durable_server.kill()
    with pytest.raises(BackendUnavailableError):
        ex.backend.last_trial_id()
    durable_server.start()
    assert run(ex, result, 2) == 20
    check_intact(ex, [1, 2])


def test_scripts_are_reloaded_after_a_restart(durable_server):
    """The Lua scripts are cached by the server; a restarted server has forgotten them."""
    backend = RedisBackend("scripts", durable_server.uri)
    assert backend.start_trial({"seed": 1}) == 1
    assert backend.swap_step_hashes([("f", "i", "o")]) == [None]
    durable_server.restart()
    assert backend.start_trial({"seed": 2}) == 2
    assert backend.swap_step_hashes([("f", "i", "p")]) == ["o"]
