"""A server that is down, stopped or killed: clear errors, nothing damaged, recovery."""

from __future__ import annotations

import threading
import time

import pymongo
import pytest
from daskperiment import Experiment
from daskperiment.errors import BackendUnavailableError
from pytest_daskperiment import free_port
from daskperiment_mongo import MongoBackend
from daskperiment_mongo.errors import translate
from daskperiment_mongo.retry import insert

TIMEOUT_MS = 1000


def quickstart(uri: str):
    """The quickstart with a metric and a persisted step; ``hooks[0]`` runs inside the step."""
    ex = Experiment("resilient", backend=uri)
    a, b = ex.parameter("a"), ex.parameter("b")
    hooks = [lambda: None]

    @ex.persist
    def prepare(a, b):
        return a + b

    @ex.result
    def score(s):
        ex.save_metric("m", epoch=0, value=float(s))
        hooks[0]()
        return 10 / s

    return ex, score(prepare(a, b)), hooks


def assert_first_trial_intact(ex: Experiment) -> None:
    assert ex.get_history().loc[1, "Success"]
    assert ex.get_persisted("prepare", 1) == 3
    assert list(ex.load_metric("m", 1)[1]) == [3.0]


def test_down_server_error_names_uri_cause_and_fix():
    uri = f"mongodb://me:secret@127.0.0.1:{free_port()}/db?serverSelectionTimeoutMS=300"
    backend = MongoBackend("e", uri)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        backend.last_trial_id()
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert message.startswith(f"{backend!r} could not read the last trial id")
    assert "me:***@127.0.0.1" in message and "secret" not in message
    assert "Connection refused" in message  # the cause
    assert "Fix: start the server" in message and "0.3 s" in message
    with pytest.raises(BackendUnavailableError):
        Experiment("down", backend=uri)


def test_server_stopped_and_restarted_between_trials(own_mongo_server, own_mongo_uri):
    ex, result, _ = quickstart(own_mongo_uri(serverSelectionTimeoutMS=TIMEOUT_MS))
    ex.set_parameters(a=1, b=2)
    result.compute()
    own_mongo_server.stop()
    with pytest.raises(BackendUnavailableError, match="unreachable"):
        result.compute()
    with pytest.raises(BackendUnavailableError):
        ex.get_history()
    own_mongo_server.restart()
    assert result.compute() == pytest.approx(10 / 3)
    assert_first_trial_intact(ex)
    assert list(ex.get_history()["Success"]) == [True, True]


def test_short_outage_during_a_trial_is_waited_out(own_mongo_server, own_mongo_uri):
    """Server selection waits for a server that comes back within the timeout."""
    ex, result, hooks = quickstart(own_mongo_uri(serverSelectionTimeoutMS=10_000))
    ex.set_parameters(a=1, b=2)
    result.compute()

    def outage() -> None:
        own_mongo_server.stop()
        threading.Timer(1.0, own_mongo_server.restart).start()

    hooks[0] = outage
    assert result.compute() == pytest.approx(10 / 3)  # the trial ends while the server is down
    assert list(ex.get_history()["Success"]) == [True, True]
    assert list(ex.load_metric("m", 2)[2]) == [3.0]


def test_server_killed_during_a_trial(own_mongo_server, own_mongo_uri):
    """The interrupted trial reads as failed or unfinished (its outcome is written in the background
    if the server is back in time); earlier ones are intact; the next one works."""
    ex, result, hooks = quickstart(own_mongo_uri(serverSelectionTimeoutMS=TIMEOUT_MS))
    ex.set_parameters(a=1, b=2)
    result.compute()
    hooks[0] = own_mongo_server.kill
    with pytest.raises(BackendUnavailableError, match="connection was lost|unreachable"):
        result.compute()
    hooks[0] = lambda: None
    own_mongo_server.restart()
    assert result.compute() == pytest.approx(10 / 3)
    history = ex.get_history()
    assert list(history.index) == [1, 2, 3]
    assert history.loc[1, "Success"] and history.loc[3, "Success"]
    assert ex.backend.load_trials([2])[0]["success"] in (None, False)  # never a success
    assert_first_trial_intact(ex)


def test_restart_between_trials_is_invisible(own_mongo_server, own_mongo_uri):
    """Pooled connections die with the server; the first write after a restart is repeated."""
    ex, result, _ = quickstart(own_mongo_uri(serverSelectionTimeoutMS=TIMEOUT_MS))
    ex.set_parameters(a=1, b=2)
    result.compute()
    own_mongo_server.restart()
    result.compute()
    assert list(ex.get_history()["Success"]) == [True, True]


class LosesFirstAcknowledgement:
    """A real collection whose first insert is stored but whose reply is lost."""

    def __init__(self, collection) -> None:
        self.collection, self.calls = collection, 0

    def _insert(self, method: str, *args, **kwargs):
        self.calls += 1
        result = getattr(self.collection, method)(*args, **kwargs)
        if self.calls == 1:
            raise pymongo.errors.AutoReconnect("connection closed")
        return result

    def insert_one(self, *args, **kwargs):
        return self._insert("insert_one", *args, **kwargs)

    def insert_many(self, *args, **kwargs):
        return self._insert("insert_many", *args, **kwargs)


@pytest.mark.parametrize("n", [1, 5])
def test_repeated_insert_stores_each_document_once(raw_collection, n):
    collection = raw_collection("acks")
    flaky = LosesFirstAcknowledgement(collection)
    insert(flaky, [{"n": i} for i in range(n)])
    assert flaky.calls == 2
    assert sorted(doc["n"] for doc in collection.find()) == list(range(n))


def test_rejected_credentials_say_what_to_check():
    backend = MongoBackend("e", "mongodb://me:secret@127.0.0.1:27018/db")
    error = translate(backend, "start a trial", pymongo.errors.OperationFailure("Authentication failed.", code=18))
    assert isinstance(error, BackendUnavailableError)
    assert "refused the credentials" in str(error) and "authSource" in str(error) and "secret" not in str(error)
