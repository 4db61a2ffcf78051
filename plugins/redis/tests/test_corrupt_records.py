"""One corrupt or foreign value never makes the history unreadable (issue 15, item 18), and reading
an unknown experiment writes nothing (item 13).

Values are damaged directly on the server, as another client sharing it could; the other trials
load and each bad one is reported once, by trial id, as a WARNING.
"""

from __future__ import annotations

import logging

import daskperiment

PREFIX = "daskperiment:{corrupt}:"


def _warnings(caplog, trial_id):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and f"trial {trial_id} " in r.getMessage()]


def test_malformed_values_are_reported_once_and_the_rest_loads(redis_uri, raw_redis, caplog):
    ex = daskperiment.Experiment("corrupt", backend=redis_uri)
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return a * 2

    for value in (1, 2, 3, 4, 5):
        ex.set_parameters(a=value)
        double(a).compute()
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
    for trial_id, problem in ((2, "start record is not JSON"), (3, "outcome record is not a JSON object but list"),
                              (4, "heartbeat is not a number"), (5, "parameters holds str")):
        messages = _warnings(caplog, trial_id)
        assert len(messages) == 1 and problem in messages[0], (trial_id, messages)
    assert not _warnings(caplog, 1)


def test_reading_an_unknown_experiment_writes_nothing(redis_uri, raw_redis):
    ex = daskperiment.Experiment("nobody", backend=redis_uri)
    assert ex.trial_id == 0 and ex.get_history().empty and ex.backend.metric_keys() == []
    assert ex.backend.load_persisted("step", 1) is None
    assert raw_redis.dbsize() == 0
