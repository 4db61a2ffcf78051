"""The test servers, usable without pytest: each a context manager that starts a private server
on 127.0.0.1 (a free port, a temporary directory) and removes it again.

:class:`ServerUnavailable` says a server cannot be had (with an install ``hint``); the
pytest policy around it (skip, fail on CI, external override) is :mod:`pytest_daskperiment.policy`'s.
"""

from __future__ import annotations

from .mariadb import MariaDBServer
from .mongo import MongoServer
from .postgresql import PostgreSQLServer
from .process import ExternalServer, ManagedServer, ServerUnavailable, free_port
from .redis import RedisServer

__all__ = [
    "ExternalServer",
    "ManagedServer",
    "MariaDBServer",
    "MongoServer",
    "PostgreSQLServer",
    "RedisServer",
    "ServerUnavailable",
    "free_port",
]
