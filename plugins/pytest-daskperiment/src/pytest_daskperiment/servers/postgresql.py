"""A private PostgreSQL cluster for tests: ``initdb`` into a temporary directory, ``postgres`` on a free port.

The binaries come from ``PATH`` or the distributions' versioned directories (Debian's
``/usr/lib/postgresql/<major>/bin``, which is not on ``PATH``; RHEL's ``/usr/pgsql-<major>/bin``),
newest major first. ``initdb`` and ``postgres`` refuse to run as root, and CI runs as root:
then both run as the ``postgres`` system user (created by the distribution's package) and
the data directory is chowned to it. The server listens on 127.0.0.1 only, with its socket
in the data directory, never on the machine's 5432.

pytest-postgresql's ``postgresql_proc`` is not used: it runs ``pg_ctl`` as the current user
with no way to drop root, and its missing-binary errors would need rewrapping for our
skip/fail policy anyway. ``postgres`` runs in the foreground here, so mirakuru holds the
real server process (no ``pg_ctl`` daemonising in between) and a kill is a real crash.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any, ClassVar

from .process import DEFAULT_STARTUP_TIMEOUT, ManagedServer, ServerUnavailable, ServiceAccount, run_checked

__all__ = ["POSTGRESQL_BIN_ENV", "POSTGRESQL_INSTALL_HINT", "PostgreSQLServer", "find_postgresql_bin_dir"]

#: a directory to take ``initdb``/``postgres`` from, and only from (e.g. to test another major version)
POSTGRESQL_BIN_ENV = "DASKPERIMENT_TEST_POSTGRES_BIN"

#: what to install when no PostgreSQL can be found (Debian/Ubuntu package names)
POSTGRESQL_INSTALL_HINT = "apt-get install postgresql   (server binaries), and pip install 'psycopg[binary]'"

_VERSIONED_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")


def _major(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def find_postgresql_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: ``$DASKPERIMENT_TEST_POSTGRES_BIN`` if set,
    else ``PATH``, else the newest versioned one."""
    chosen = os.environ.get(POSTGRESQL_BIN_ENV, "").strip()
    if chosen:
        return Path(chosen)
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).parent / "postgres").is_file():
        return Path(on_path).parent
    candidates = [path for pattern in _VERSIONED_DIRS for path in Path("/").glob(pattern.lstrip("/"))]
    for bin_dir in sorted(candidates, key=_major, reverse=True):
        if (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file():
            return bin_dir
    return None


class PostgreSQLServer(ManagedServer):
    """A private PostgreSQL server: trust authentication for ``user`` on 127.0.0.1, no fsync.

    The cluster lives in ``data_dir/pgdata`` (created by ``initdb`` on the first start and
    kept across :meth:`restart` and :meth:`kill`); the socket and the log sit in ``data_dir``.
    ``fsync`` and ``full_page_writes`` are off: they guard against an OS crash, which a test
    never simulates; a commit still reaches the OS before it returns (``synchronous_commit``
    stays on), so a killed server loses no committed transaction.
    Running as root, ``data_dir`` must be reachable by the ``postgres`` system user (the
    default temporary directory is).
    """

    name: ClassVar[str] = "postgresql"
    stop_signal: ClassVar[int] = signal.SIGINT  # "fast" shutdown: open client connections do not hold it up

    def __init__(self, *, bin_dir: str | os.PathLike[str] | None = None, user: str = "postgres",
                 port: int | None = None, data_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        super().__init__(port=port, data_dir=data_dir, startup_timeout=startup_timeout)
        self.bin_dir = Path(bin_dir) if bin_dir is not None else None
        #: the database superuser (trust authentication, no password)
        self.user = user
        self.cluster_dir = self.data_dir / "pgdata"
        self._account: ServiceAccount | None = None

    @property
    def uri(self) -> str:
        """``postgresql://USER@127.0.0.1:PORT/postgres`` (libpq form, for psycopg)."""
        return self.database_uri("postgres")

    @property
    def url(self) -> str:
        """``postgresql+psycopg://USER@127.0.0.1:PORT/postgres`` (SQLAlchemy form)."""
        return self.database_url("postgres")

    def database_uri(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def database_url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def client(self, **kwargs: Any) -> Any:
        """A ``psycopg.Connection`` to the ``postgres`` database (autocommit, for CREATE DATABASE)."""
        import psycopg

        kwargs.setdefault("connect_timeout", 5)
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.uri, **kwargs)

    def _binary(self, name: str) -> str:
        bin_dir = self.bin_dir or find_postgresql_bin_dir()
        if bin_dir is None or not (bin_dir / name).is_file():
            where = f"in {bin_dir}" if bin_dir else "on PATH nor in " + " or ".join(_VERSIONED_DIRS)
            raise ServerUnavailable(f"no PostgreSQL {name!r} binary {where}", hint=POSTGRESQL_INSTALL_HINT)
        return str(bin_dir / name)

    def _check_available(self) -> None:
        self._binary("initdb")
        self._binary("postgres")
        if importlib.util.find_spec("psycopg") is None:
            raise ServerUnavailable("the Python client 'psycopg' (v3) is not installed",
                                    hint="pip install 'psycopg[binary]'")
        self._account = ServiceAccount.for_root(
            "postgres", hint="apt-get install postgresql (creates the 'postgres' user), or run the tests "
                             "as an unprivileged user")

    def _popen_kwargs(self) -> dict[str, Any]:
        return self._account.popen_kwargs() if self._account is not None else {}

    def _environment(self) -> dict[str, str]:
        return {"LC_ALL": "C", "LANG": "C"}

    def _prepare(self) -> None:
        if (self.cluster_dir / "PG_VERSION").is_file():
            return
        if self._account is not None:
            self._account.give(self.data_dir)
        command = [self._binary("initdb"), "--pgdata", str(self.cluster_dir), "--username", self.user,
                   "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync"]
        what = f"initdb (as the system user {self._account.name!r})" if self._account is not None else "initdb"
        run_checked(command, what, log_path=self.log_path, timeout=max(self.startup_timeout, 60.0),
                    cwd=self.data_dir, env={**os.environ, **self._environment()}, **self._popen_kwargs())

    def _command(self) -> list[str]:
        return [self._binary("postgres"), "-D", str(self.cluster_dir), "-p", str(self.port),
                "-h", self.host, "-k", str(self.data_dir),
                "-c", "fsync=off", "-c", "full_page_writes=off"]

    def _ping(self) -> None:
        with self.client(connect_timeout=2) as connection:
            connection.execute("SELECT 1")
