"""A private MariaDB (or MySQL) server for tests: ``mariadb-install-db`` into a temporary directory.

The binaries come from ``PATH`` or ``/usr/sbin`` and ``/usr/bin`` (Debian installs ``mariadbd``
in ``/usr/sbin``, not on an unprivileged ``PATH``). Running as root, the server and the install
script run as the ``mysql`` system user (the same as ``--user=mysql``, without a root process
in between) with the data directory chowned to it; where there is no such user (Debian's
``mariadb-server-core`` alone does not create it) they run as root with ``--user=root``.
The server listens on 127.0.0.1 only, never on the machine's 3306; its socket, pid file and
log stay in the data directory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from .process import DEFAULT_STARTUP_TIMEOUT, ManagedServer, ServerUnavailable, ServiceAccount, run_checked

__all__ = ["MARIADB_BIN_ENV", "MARIADB_INSTALL_HINT", "MariaDBServer", "connect", "find_mariadb_binaries"]

#: a directory to take ``mariadbd`` and ``mariadb-install-db`` from, and only from
MARIADB_BIN_ENV = "DASKPERIMENT_TEST_MARIADB_BIN"

#: what to install when no MariaDB can be found (Debian/Ubuntu package name)
MARIADB_INSTALL_HINT = "apt-get install mariadb-server-core   (or mariadb-server), and pip install pymysql"

_SEARCH_PATH = os.pathsep.join(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"])


def _which(*names: str) -> str | None:
    chosen = os.environ.get(MARIADB_BIN_ENV, "").strip()
    for name in names:
        found = shutil.which(name, path=chosen) if chosen else shutil.which(name) or shutil.which(
            name, path=_SEARCH_PATH)
        if found:
            return found
    return None


def find_mariadb_binaries() -> tuple[str, str] | None:
    """``(server, install script)``: ``mariadbd``/``mysqld`` and ``mariadb-install-db``/``mysql_install_db``
    from ``$DASKPERIMENT_TEST_MARIADB_BIN`` if set, else ``PATH``, else the system directories."""
    server = _which("mariadbd", "mysqld")
    install = _which("mariadb-install-db", "mysql_install_db")
    return (server, install) if server and install else None


def connect(uri: str, **kwargs: Any) -> Any:
    """A ``pymysql`` connection from ``mysql://user:password@host:port/database`` (any ``+driver``)."""
    import pymysql

    parts = urlsplit(uri)
    kwargs.setdefault("connect_timeout", 5)
    kwargs.setdefault("autocommit", True)
    return pymysql.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                           user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
                           database=parts.path.lstrip("/") or None, **kwargs)


class MariaDBServer(ManagedServer):
    """A private MariaDB server: user ``root`` without password over TCP, utf8mb4 by default.

    The database files live in ``data_dir/data`` (created on the first start, kept across
    :meth:`restart` and :meth:`kill`). ``innodb_flush_log_at_trx_commit=2``: a commit reaches
    the OS before it returns, so a killed server loses nothing committed; only the fsync, which
    guards against an OS crash that no test simulates, is once a second.
    """

    name: ClassVar[str] = "mariadb"

    def __init__(self, *, port: int | None = None, data_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        super().__init__(port=port, data_dir=data_dir, startup_timeout=startup_timeout)
        self.db_dir = self.data_dir / "data"
        self._account: ServiceAccount | None = None

    @property
    def uri(self) -> str:
        """``mysql://root@127.0.0.1:PORT/`` (no database)."""
        return f"mysql://root@{self.host}:{self.port}/"

    @property
    def url(self) -> str:
        """``mysql+pymysql://root@127.0.0.1:PORT/`` (SQLAlchemy form, no database)."""
        return self.database_url("")

    def database_url(self, database: str) -> str:
        return f"mysql+pymysql://root@{self.host}:{self.port}/{database}"

    def client(self, **kwargs: Any) -> Any:
        """A ``pymysql`` connection as ``root`` (autocommit)."""
        return connect(self.uri, **kwargs)

    def _binaries(self) -> tuple[str, str]:
        found = find_mariadb_binaries()
        if found is None:
            raise ServerUnavailable("MariaDB is not installed: no mariadbd/mysqld and mariadb-install-db/"
                                    f"mysql_install_db on PATH or in {_SEARCH_PATH}", hint=MARIADB_INSTALL_HINT)
        return found

    def _check_available(self) -> None:
        self._binaries()
        if importlib.util.find_spec("pymysql") is None:
            raise ServerUnavailable("the Python client 'pymysql' is not installed", hint="pip install pymysql")
        # as root: the mysql user (mariadb-server creates it); without one (mariadb-server-core
        # alone), root itself, which mariadbd accepts only when told so with --user=root
        self._account = ServiceAccount.lookup("mysql") if os.geteuid() == 0 else None

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 and self._account is None else []

    def _popen_kwargs(self) -> dict[str, Any]:
        return self._account.popen_kwargs() if self._account is not None else {}

    def _prepare(self) -> None:
        if (self.db_dir / "mysql").is_dir():
            return
        if self._account is not None:
            self._account.give(self.data_dir)
        command = [self._binaries()[1], "--no-defaults", f"--datadir={self.db_dir}",
                   "--auth-root-authentication-method=normal", "--skip-test-db", *self._as_root()]
        what = "mariadb-install-db" + (f" (as the system user {self._account.name!r})" if self._account else "")
        run_checked(command, what, log_path=self.log_path,
                    timeout=max(self.startup_timeout, 120.0), cwd=self.data_dir, **self._popen_kwargs())

    def _command(self) -> list[str]:
        return [self._binaries()[0], "--no-defaults", f"--datadir={self.db_dir}", f"--port={self.port}",
                f"--bind-address={self.host}", f"--socket={self.data_dir / 'mariadb.sock'}",
                f"--pid-file={self.data_dir / 'mariadb.pid'}", f"--tmpdir={self.data_dir}",
                "--skip-name-resolve", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
                "--innodb-flush-log-at-trx-commit=2", *self._as_root()]

    def _ping(self) -> None:
        connection = self.client(connect_timeout=2)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            connection.close()


