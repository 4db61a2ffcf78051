"""A real MongoDB wire-protocol server for the tests, and a fresh database per test.

``mongo_server`` and ``mongo_uri`` come from the ``pytest-daskperiment`` plugin: a
private ``nx-27017`` server, or the server named by ``DASKPERIMENT_TEST_MONGO_URI`` (a real
``mongod``); a missing server skips loudly, or fails with ``CI=true``. Tests that stop
or kill a server get one of their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
from pytest_daskperiment import MongoServer
from pytest_daskperiment.fixtures import mongo_server_or_skip, with_database
from pytest_daskperiment.policy import MONGO_URI_ENV


@pytest.fixture
def own_mongo_server() -> Iterator[MongoServer]:
    """A private server the test may stop, kill and restart."""
    if os.environ.get(MONGO_URI_ENV):
        pytest.skip(f"{MONGO_URI_ENV} is set: an external server cannot be stopped by the tests")
    server = mongo_server_or_skip()
    yield server
    server.close()


@pytest.fixture
def own_mongo_uri(own_mongo_server) -> Callable[..., str]:
    """URI options → a URI of database ``db`` on :func:`own_mongo_server`."""
    return lambda **options: f"{with_database(own_mongo_server.uri, 'db')}?{urlencode(options)}"


@pytest.fixture
def mongo_database(mongo_uri):
    """A ``pymongo.database.Database`` on the test's fresh database."""
    import pymongo

    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=2000)
    yield client.get_default_database()
    client.close()


@pytest.fixture
def raw_collection(mongo_uri) -> Iterator[Callable[[str], object]]:
    """experiment id → its pymongo collection, to inspect stored documents directly."""
    import pymongo

    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=2000)
    yield lambda experiment_id: client.get_default_database()[experiment_id]
    client.close()


@pytest.fixture
def make_mongo_backend(mongo_uri) -> Iterator[Callable[..., object]]:
    """experiment id → MongoBackend on the test's database (closed after the test)."""
    from daskperiment_mongo import MongoBackend

    made: list[MongoBackend] = []

    def make(experiment_id: str, **kwargs: object) -> MongoBackend:
        backend = MongoBackend(experiment_id, mongo_uri, **kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
