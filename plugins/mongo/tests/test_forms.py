"""How users name a MongoDB backend: URI, Database, and the forms that are refused."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pymongo
import pytest
from daskperiment import Experiment
from daskperiment.plugins import make_backend
from daskperiment.errors import BackendError
from daskperiment_mongo import MongoBackend


def test_uri_dispatches_to_mongo_backend(mongo_uri):
    backend = make_backend("ex", mongo_uri)
    assert isinstance(backend, MongoBackend)
    assert repr(backend) == f"MongoBackend({mongo_uri!r})"
    backend.close()


def test_srv_uri_is_registered_and_resolved_lazily():
    """mongodb+srv needs DNS: building the backend must not touch the network."""
    backend = make_backend("ex", "mongodb+srv://user:secret@cluster0.example.invalid/test_db")
    assert repr(backend) == "MongoBackend('mongodb+srv://user:***@cluster0.example.invalid/test_db')"


def test_experiment_with_uri_runs_trials(mongo_uri):
    ex = Experiment("uri_form", backend=mongo_uri)
    assert repr(ex) == f"Experiment(id: uri_form, trial_id: 0, backend: MongoBackend({mongo_uri!r}))"
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    ex.set_parameters(a=21)
    assert double(a).compute() == 42
    assert ex.trial_id == 1
    ex.backend.close()


def test_experiment_with_database_runs_trials(mongo_database, mongo_uri):
    ex = Experiment("db_form", backend=mongo_database)
    assert repr(ex.backend) == f"MongoBackend({mongo_uri!r})"
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    ex.set_parameters(a=2)
    assert double(a).compute() == 4
    # the user's client stays theirs: closing the backend does not close it
    ex.backend.close()
    assert mongo_database.command("ping")["ok"]
    # a copy (as shipped to a Dask worker) builds its own client and sees the same trial
    clone = pickle.loads(pickle.dumps(ex.backend))
    assert clone.last_trial_id() == 1 and clone.load_trials()[0]["result"] == 4
    clone.close()


def test_database_repr_from_client_options():
    client = pymongo.MongoClient("127.0.0.1", 27018, connect=False)
    assert repr(MongoBackend("e", client.test_db)) == "MongoBackend('mongodb://127.0.0.1:27018/test_db')"
    client = pymongo.MongoClient("mongodb://me:secret@127.0.0.1:27018/admin?authSource=admin", connect=False)
    assert (repr(MongoBackend("e", client["test_db"]))
            == "MongoBackend('mongodb://me:***@127.0.0.1:27018/test_db?authSource=admin')")


def test_mongo_client_is_refused_with_how_to_name_the_database(mongo_server):
    client = pymongo.MongoClient(mongo_server.uri, connect=False)
    with pytest.raises(BackendError) as info:
        Experiment("refused", backend=client)
    assert "MongoClient does not say which database" in str(info.value)
    assert "'mongodb://localhost:27017/my_db'" in str(info.value) and ".my_db" in str(info.value)
    client.close()


@pytest.mark.parametrize("uri", ["mongodb://127.0.0.1:27018", "mongodb://u:secret@127.0.0.1:27018/",
                                 "mongodb://127.0.0.1:27018/?serverSelectionTimeoutMS=100"])
def test_uri_without_database_is_refused(uri):
    with pytest.raises(BackendError, match="names no database") as info:
        Experiment("refused", backend=uri)
    assert "'mongodb://localhost:27017/my_db'" in str(info.value) and "secret" not in str(info.value)


@pytest.mark.parametrize(("uri", "shown"), [
    ("mongodb://admin:s3cr%40t@127.0.0.1:27018/db", "mongodb://admin:***@127.0.0.1:27018/db"),
    ("mongodb://admin:pw@h1:27018,h2:27019/db?replicaSet=rs", "mongodb://admin:***@h1:27018,h2:27019/db?replicaSet=rs"),
    ("mongodb://admin:pw@[::1]:27018/db", "mongodb://admin:***@[::1]:27018/db"),
    ("mongodb://admin@127.0.0.1/db", "mongodb://admin@127.0.0.1/db"),
])
def test_repr_masks_the_password(uri, shown):
    backend = MongoBackend("e", uri)
    assert repr(backend) == f"MongoBackend({shown!r})"
    assert backend.uri == shown


def test_plugin_import_does_not_import_pymongo():
    """The plugin is loaded in every daskperiment process; pymongo only when used."""
    code = ("import sys, daskperiment_mongo; from daskperiment.plugins import get_backend_registry; "
            "assert 'mongodb' in get_backend_registry().schemes; print('pymongo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
