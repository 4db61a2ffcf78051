"""A dead or frozen server is noticed fast and leaves no ghost nor gap (issue 15, items 15 and 16).

Each test runs its own nx-27017 server and kills (SIGKILL) or freezes (SIGSTOP) it, with
short timeouts in the URI to keep the suite quick. Times with the default settings are
measured by ``benchmarks/bench_faults.py``, not asserted here. The dead and frozen server
checks, shared with the Redis plugin, are :mod:`daskperiment.testing.faults`.
"""

from __future__ import annotations

import pytest
from daskperiment.errors import BackendUnavailableError
from daskperiment.testing.faults import (check_dead_server_fails_the_trial, check_frozen_server_fails_the_trial,
                                        frozen)
from daskperiment_mongo import MongoBackend
from daskperiment_mongo.backend import TIMED_OUT_START

FAST = {"serverSelectionTimeoutMS": 1000, "socketTimeoutMS": 1000, "connectTimeoutMS": 1000}


def test_a_dead_server_fails_the_trial_at_once_with_one_error(own_mongo_server, own_mongo_uri, caplog):
    check_dead_server_fails_the_trial(own_mongo_uri(**FAST), own_mongo_server.kill, caplog,
                                      match="could not save metrics: the MongoDB server is unreachable")


def test_a_frozen_server_fails_the_trial_within_the_socket_timeout(own_mongo_server, own_mongo_uri):
    check_frozen_server_fails_the_trial(own_mongo_uri(**FAST), own_mongo_server.pid,
                                        match="timed out|operation cancelled")  # the socket's or the monitor's


def test_a_start_that_timed_out_leaves_no_ghost_and_no_gap(own_mongo_server, own_mongo_uri):
    """The server froze while a trial started. Should it store the start after the client gave up
    (nx-27017 drops it; a mongod may not), the next start finds it by its token and closes it as
    failed. Either way ids have no gap and no trial is left looking as if it were running."""
    backend = MongoBackend("ghost", own_mongo_uri(**FAST))
    backend.finish_trial(backend.start_trial({"parameters": {"a": 1}}), {"success": True})
    with frozen(own_mongo_server.pid), pytest.raises(BackendUnavailableError, match="could not start a trial"):
        backend.start_trial({"parameters": {"a": 2}})
    last = backend.start_trial({"parameters": {"a": 3}})
    backend.finish_trial(last, {"success": True})
    records = backend.load_trials()
    assert [r["trial_id"] for r in records] == list(range(1, last + 1))  # no gap
    assert [r["parameters"] for r in records if r["success"]] == [{"a": 1}, {"a": 3}]
    assert [r["description"] for r in records if not r["success"]] == [TIMED_OUT_START] * (last - 2)
    backend.close()


def test_a_start_repeated_after_a_lost_connection_is_one_trial(make_mongo_backend):
    """Claiming an id by inserting the trial document: a repeat of our own insert is recognised by its token."""
    backend = make_mongo_backend("repeat")
    collection = backend._writable()
    collection.insert_one({"_id": "trial:1", "category": "trial", "trial_id": 1, "token": "someone else"})
    assert backend.start_trial({"parameters": {"a": 1}}) == 2  # 1 was taken: the next one
    assert [r["trial_id"] for r in backend.load_trials()] == [1, 2]
