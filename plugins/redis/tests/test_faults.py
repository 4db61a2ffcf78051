"""A dead or frozen server is noticed fast and leaves no ghost (issue 15, items 15 and 16).

Each test runs its own redis-server and kills (SIGKILL) or freezes (SIGSTOP) it. Times are
not asserted here (``benchmarks/bench_faults.py`` measures them with the default settings);
the tests check that the trial stops at the first failed write with one clear error.
"""

from __future__ import annotations

import logging
import os
import signal

import daskperiment
import pytest
from daskperiment.errors import BackendUnavailableError
from daskperiment_redis import RedisBackend
from daskperiment_redis.backend import TIMED_OUT_START


def _metrics_experiment(uri: str, on_step):
    ex = daskperiment.Experiment("faults", backend=uri)
    reached = []

    @ex.result
    def train():
        for i in range(5000):  # about 25 s if nothing stopped it
            if i == 20:
                on_step()
            ex.save_metric("loss", epoch=i, value=1 / (i + 1))
            reached.append(i)
            __import__("time").sleep(0.005)
        return 1

    return ex, train, reached


def test_a_dead_server_fails_the_trial_at_once_with_one_error(make_server, caplog):
    server = make_server()
    ex, train, reached = _metrics_experiment(server.uri, server.kill)
    caplog.set_level(logging.INFO, logger="daskperiment")
    with pytest.raises(BackendUnavailableError, match="cannot reach the Redis server while saving metrics"):
        train().compute()
    assert reached[-1] < 1000  # stopped by the first failed write, not by the step's end
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(":")[0] for r in errors] == ["Writing metrics of trial 1 failed",
                                                              "Failed Experiment (trial id=1)"]
    assert not any(r.exc_info for r in caplog.records)  # no tracebacks in the log


def test_a_frozen_server_fails_the_trial_within_the_socket_timeout(make_server):
    server = make_server()
    frozen = []

    def freeze():
        os.kill(server.pid, signal.SIGSTOP)
        frozen.append(True)

    ex, train, reached = _metrics_experiment(server.uri + "?socket_timeout=1", freeze)
    try:
        with pytest.raises(BackendUnavailableError, match="Timeout"):
            train().compute()
    finally:
        if frozen:
            os.kill(server.pid, signal.SIGCONT)
    assert reached[-1] < 1000


def test_a_start_that_timed_out_is_no_ghost(make_server):
    """The server froze while a trial started; it ran the start after the client had given up. The
    next start finds it by its token and closes it as failed: no trial looks as if it were running."""
    server = make_server()
    backend = RedisBackend("ghost", server.uri + "?socket_timeout=1")
    backend.start_trial({"parameters": {"a": 1}})  # connected, scripts loaded
    os.kill(server.pid, signal.SIGSTOP)
    try:
        with pytest.raises(BackendUnavailableError, match="while allocating a trial id"):
            backend.start_trial({"parameters": {"a": 2}})
    finally:
        os.kill(server.pid, signal.SIGCONT)
    ghost = backend.last_trial_id()
    assert ghost == 2  # the server did run the start once it was thawed
    assert backend.load_trials([2])[0]["success"] is None
    assert backend.start_trial({"parameters": {"a": 3}}) == 3  # ids stay contiguous
    (closed,) = backend.load_trials([2])
    assert closed["success"] is False and closed["description"] == TIMED_OUT_START
    history = daskperiment.Experiment("ghost", backend=server.uri).get_history()
    assert not history.loc[2, "Success"] and history.loc[2, "Description"] == TIMED_OUT_START


def test_a_start_sent_twice_is_one_trial(redis_uri, raw_redis):
    """The start script is idempotent: the same token (a repeat after a lost connection) gives the same id."""
    backend = RedisBackend("twice", redis_uri)
    script = backend._script("start_trial")
    keys = [backend.keys.counter, backend.keys.trial_start, backend.keys.start_token("t0k3n")]
    assert [int(script(keys=keys, args=['{"seed": 1}', 60])) for _ in range(2)] == [1, 1]
    assert backend.last_trial_id() == 1 and len(backend.load_trials()) == 1
    assert 0 < raw_redis.ttl(keys[2]) <= 60
