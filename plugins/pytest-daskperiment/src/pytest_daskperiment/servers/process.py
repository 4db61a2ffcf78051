"""One private server process: a free port on 127.0.0.1, a temporary directory, start/stop/kill.

Backends are tested against real servers, not mocks: mocks agree with whatever the backend
author believed. :class:`ManagedServer` is the part every server shares; the subclasses add
the command line, a protocol-level ping and (for SQL servers) a first-start initialisation.
Process handling is mirakuru's (:class:`mirakuru.TCPExecutor`): start in a session of its
own, wait until the port answers, SIGTERM (or the server's own stop signal) then SIGKILL,
and kill every process still carrying its marker at interpreter exit, so a crashed or
interrupted test session leaves no orphans. What stays ours is the policy around it: the
machine's default ports are never used (whatever runs there is not ours), a port taken
between choosing and binding is replaced, output goes to a log file in the data directory
(never a pipe, which would fill up and stall the server) and its tail goes into errors.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from mirakuru import TCPExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, ProcessFinishedWithError, TimeoutExpired

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DEFAULT_STARTUP_TIMEOUT",
    "RESERVED_PORTS",
    "ExternalServer",
    "ManagedServer",
    "ServerUnavailable",
    "ServiceAccount",
    "free_port",
    "run_checked",
]

logger = logging.getLogger(__name__)

#: seconds a server gets to answer its first ping, and to exit after its stop signal before
#: it is SIGKILLed (mirakuru has one timeout for both)
DEFAULT_STARTUP_TIMEOUT = 20.0
#: never started on (or allowed as) a test port: a real service may be listening there
RESERVED_PORTS = frozenset({3306, 5432, 6379, 27017})

_LOG_TAIL_CHARS = 2000
_PORT_ATTEMPTS = 3


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
            port: int = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


@dataclass(frozen=True)
class ServiceAccount:
    """The unprivileged system user a database server runs as when the tests run as root.

    PostgreSQL's ``initdb``/``postgres`` refuse to run as root and MariaDB wants an explicit
    ``--user``; CI runs as root. The processes are started with that user's uid, gid and
    groups (``subprocess``'s ``user``/``group``/``extra_groups``, the same switch ``runuser``
    makes) and their directories are chowned to it.
    """

    name: str
    uid: int
    gid: int

    @classmethod
    def lookup(cls, name: str) -> ServiceAccount | None:
        """The system user ``name``, or ``None`` if there is none."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return cls(name, entry.pw_uid, entry.pw_gid)

    @classmethod
    def for_root(cls, name: str, hint: str) -> ServiceAccount | None:
        """The account ``name`` when this process is root, else ``None`` (run as ourselves)."""
        if os.geteuid() != 0:
            return None
        account = cls.lookup(name)
        if account is None:
            raise ServerUnavailable(
                f"running as root, and the server refuses root: it must run as the system user "
                f"{name!r}, which does not exist", hint=hint)
        return account

    def popen_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`subprocess.Popen` that drop root for this account."""
        return {"user": self.uid, "group": self.gid, "extra_groups": os.getgrouplist(self.name, self.gid)}

    def give(self, path: Path) -> None:
        """Make ``path`` (a directory we created) this account's own."""
        os.chown(path, self.uid, self.gid)


class ExternalServer:
    """A server someone else runs (named by an environment variable): only its URI is known.

    ``url`` is the same address in SQLAlchemy form for SQL servers (``uri`` otherwise).
    It cannot be stopped, killed or restarted; tests needing that must skip on ``external``.
    """

    external: ClassVar[bool] = True

    def __init__(self, uri: str, url: str | None = None) -> None:
        self.uri = uri
        self.url = url if url is not None else uri
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


class _PingingExecutor(TCPExecutor):
    """mirakuru's TCP executor whose readiness check also asks the server a real question.

    An open port is not enough: a Redis loading its append-only file or a PostgreSQL still
    recovering accepts connections but answers with errors.
    """

    def __init__(self, command: list[str], *, host: str, port: int, ping: Callable[[], None],
                 **kwargs: Any) -> None:
        super().__init__(command, host=host, port=port, **kwargs)
        self._ping = ping
        self.last_error: BaseException | None = None

    def after_start_check(self) -> bool:
        if not super().after_start_check():
            return False
        try:
            self._ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            self.last_error = exc
            return False
        return True


class ManagedServer(abc.ABC):
    """Start/stop/kill/restart of one private server; subclasses give the command and the ping.

    The port is chosen once (a busy auto-chosen port is replaced at start) and kept across
    :meth:`restart`; the data directory is a fresh temporary one unless given, removed by
    :meth:`close` only if it was created here.
    """

    external: ClassVar[bool] = False
    name: ClassVar[str] = "server"
    #: signal that asks the server to shut down cleanly
    stop_signal: ClassVar[int] = signal.SIGTERM

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
        self._executor: _PingingExecutor | None = None
        self._log_file: IO[bytes] | None = None

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The server's command line (it must stay in the foreground: mirakuru holds its pid)."""

    @abc.abstractmethod
    def _ping(self) -> None:
        """Raise unless the server answers a real request."""

    def _check_available(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Raise :class:`ServerUnavailable` if the server software is missing."""

    def _prepare(self) -> None:  # noqa: B027 - optional hook, nothing to prepare by default
        """Work before each start (e.g. creating the database cluster on the first one)."""

    def _popen_kwargs(self) -> dict[str, Any]:
        """Extra :class:`subprocess.Popen` arguments (e.g. the service account's uid)."""
        return {}

    def _environment(self) -> dict[str, str]:
        """Environment variables added to ours for the server process."""
        return {}

    # -- public -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        process = self._executor.process if self._executor is not None else None
        return process.pid if process is not None else None

    @property
    def is_running(self) -> bool:
        return self._executor is not None and self._executor.running()

    def start(self) -> Self:
        """Start the server and wait until it answers; a busy auto-chosen port is retried."""
        if self.is_running:
            return self
        self._check_available()
        self._prepare()
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

    def stop(self) -> None:
        """Ask the server to shut down (its stop signal), SIGKILL after ``startup_timeout``; data stays."""
        executor = self._executor
        if executor is not None and executor.running():
            try:
                executor.stop()
            except ProcessFinishedWithError as exc:
                logger.warning("%s: exited with code %s on stop; see %s", self.name, exc.exit_code, self.log_path)
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL the server and everything it started (a crash, for resilience tests)."""
        if self._executor is not None:
            self._executor.kill()
        self._forget_process()

    def restart(self) -> Self:
        """Stop and start again on the same port (and, for servers that persist, the same data)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the data directory if it was created here."""
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
        executor = _PingingExecutor(
            command, host=self.host, port=self.port, ping=self._ping, timeout=self.startup_timeout,
            sleep=0.05, stop_signal=self.stop_signal, cwd=str(self.data_dir), envvars=self._environment(),
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            popen_kwargs=self._popen_kwargs())
        failure = f"command: {' '.join(command)}\n--- {self.log_path} (tail) ---\n"
        try:
            executor.start()
        except OSError as exc:
            self._forget_process()
            raise ServerUnavailable(f"cannot run {command[0]!r}: {exc}") from exc
        except AlreadyRunning:
            self._forget_process()
            raise ServerUnavailable(f"port {self.port} is already answered by another process") from None
        except ProcessExitedWithError as exc:
            self._forget_process()
            raise ServerUnavailable(f"{self.name} exited with code {exc.exit_code} during start-up; "
                                    f"{failure}{self.log_tail()}") from None
        except TimeoutExpired:  # mirakuru has killed it
            self._forget_process()
            raise ServerUnavailable(
                f"{self.name} did not answer within {self.startup_timeout:.0f}s on port {self.port} "
                f"(last error: {executor.last_error!r}); {failure}{self.log_tail()}") from None
        self._executor = executor
        self.startup_seconds = time.monotonic() - started
        logger.info("%s: pid %s ready on port %d after %.2fs", self.name, self.pid, self.port,
                    self.startup_seconds)

    def _port_free(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((self.host, self.port))
            except OSError:
                return False
        return True

    def _forget_process(self) -> None:
        self._executor = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def run_checked(command: list[str], what: str, *, log_path: Path, timeout: float,
                **kwargs: Any) -> None:
    """Run a one-off setup command (``initdb``, ``mariadb-install-db``), its output appended to
    ``log_path``; a failure raises :class:`ServerUnavailable` naming the command and its output."""
    with open(log_path, "ab") as log:
        try:
            completed = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       timeout=timeout, check=False, **kwargs)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerUnavailable(f"{what} could not run: {exc}") from exc
    if completed.returncode != 0:
        tail = ""
        with contextlib.suppress(OSError):
            tail = log_path.read_bytes()[-_LOG_TAIL_CHARS:].decode("utf-8", "replace")
        raise ServerUnavailable(f"{what} failed with code {completed.returncode}; command: {' '.join(command)}\n"
                                f"--- {log_path} (tail) ---\n{tail}")
