"""pytest plugin of daskperiment: real test servers (Redis, MongoDB wire protocol, PostgreSQL,
MariaDB) on 127.0.0.1, a free port and a temporary directory, for backend test suites.

Loaded by the ``pytest11`` entry point (installing ``pytest-daskperiment`` is enough), or by
``pytest_plugins = ["pytest_daskperiment"]`` in a root ``conftest.py``. The fixtures are
:mod:`pytest_daskperiment.fixtures`'; the server classes, usable without pytest fixtures
(benchmarks, a test's private server), are :mod:`pytest_daskperiment.servers`'.
"""

from __future__ import annotations

from .fixtures import (
    mariadb_server,
    mariadb_url,
    mongo_server,
    mongo_uri,
    postgresql_server,
    postgresql_url,
    redis_server,
    redis_uri,
)
from .policy import running_on_ci, server_unavailable
from .servers import (
    ExternalServer,
    MariaDBServer,
    MongoServer,
    PostgreSQLServer,
    RedisServer,
    ServerUnavailable,
    free_port,
)

__all__ = [
    "ExternalServer",
    "MariaDBServer",
    "MongoServer",
    "PostgreSQLServer",
    "RedisServer",
    "ServerUnavailable",
    "free_port",
    "mariadb_server",
    "mariadb_url",
    "mongo_server",
    "mongo_uri",
    "postgresql_server",
    "postgresql_url",
    "redis_server",
    "redis_uri",
    "running_on_ci",
    "server_unavailable",
]
