"""A dead or frozen server is noticed fast and leaves no ghost (issue 15, items 15 and 16).

Each test runs its own redis-server and kills (SIGKILL) or freezes (SIGSTOP) it. Times are
not asserted here (``benchmarks/bench_faults.py`` measures them with the default settings);
the tests check that the trial stops at the first failed write with one clear error (the
checks, shared with the MongoDB plugin, are :mod:`daskperiment.testing.faults`).
"""

from __future__ import annotations

import daskperiment
import pytest
from daskperiment.errors import BackendUnavailableError
from daskperiment.testing.faults import (check_dead_server_fails_the_trial, check_frozen_server_fails_the_trial,
                                        frozen)
from daskperiment_redis import RedisBackend
from daskperiment_redis.backend import TIMED_OUT_START


def test_a_dead_server_fails_the_trial_at_once_with_one_error(make_server, caplog):
    server = make_server()
    check_dead_server_fails_the_trial(server.uri, server.kill, caplog,
                                      match="cannot reach the Redis server while saving metrics")


def test_a_frozen_server_fails_the_trial_within_the_socket_timeout(make_server):
    server = make_server()
    check_frozen_server_fails_the_trial(server.uri + "?socket_timeout=1", server.pid, match="Timeout")


def test_a_start_that_timed_out_is_no_ghost(make_server):
    """The server froze while a trial started; it ran the start after the client had given up. The
    next start finds it by its token and closes it as failed: no trial looks as if it were running."""
    server = make_server()
    backend = RedisBackend("ghost", server.uri + "?socket_timeout=1")
    backend.start_trial({"parameters": {"a": 1}})  # connected, scripts loaded
    with frozen(server.pid), pytest.raises(BackendUnavailableError, match="while allocating a trial id"):
        backend.start_trial({"parameters": {"a": 2}})
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
