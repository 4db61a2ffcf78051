"""One corrupt or foreign value never makes the history unreadable (issue 15, item 18), and reading
an unknown experiment writes nothing (item 13).

Values are damaged directly on the server, as another client sharing it could; the other trials
load and each bad one is reported once, by trial id, as a WARNING (the trials and the check are
:mod:`daskperiment.testing.faults`'s, shared with the other backends).
"""

from __future__ import annotations

import logging

import daskperiment
from daskperiment.testing.faults import check_reported_once, doubling_experiment

PREFIX = "daskperiment:{corrupt}:"


def test_malformed_values_are_reported_once_and_the_rest_loads(redis_uri, raw_redis, caplog):
    ex, _ = doubling_experiment(redis_uri, [1, 2, 3, 4, 5])
    raw_redis.hset(PREFIX + "trial:start", 2, '{"parameters": {"a": 2}')  # truncated JSON
    raw_redis.hset(PREFIX + "trial:outcome", 3, "[1]")  # JSON, but not an outcome
    raw_redis.hset(PREFIX + "trial:heartbeat", 4, "soon")
    raw_redis.hset(PREFIX + "trial:start", 5, '{"parameters": "a=5", "seed": "s"}')  # foreign types
    caplog.set_level(logging.WARNING, logger="daskperiment")
    history = ex.get_history(verbose=True)
    assert list(history.index) == [1, 3, 4, 5]  # trial 2 has no readable start: absent, reported
    assert history.loc[1, "Result"] == 2 and history.loc[4, "Result"] == 8 and history.loc[3, "a"] == 3
    assert history["Success"].isna().tolist() == [False, True, False, False]
    ex.get_history(verbose=True)
    assert ex.get_parameters(trial_id=4) == {"a": 4}
    assert ex.backend.load_trials([4])[0]["heartbeat"] is None
    check_reported_once(caplog, {2: "start record is not JSON", 3: "outcome record is not a JSON object but list",
                                 4: "heartbeat is not a number", 5: "parameters holds str"})


def test_reading_an_unknown_experiment_writes_nothing(redis_uri, raw_redis):
    ex = daskperiment.Experiment("nobody", backend=redis_uri)
    assert ex.trial_id == 0 and ex.get_history().empty and ex.backend.metric_keys() == []
    assert ex.backend.load_persisted("step", 1) is None
    assert raw_redis.dbsize() == 0
