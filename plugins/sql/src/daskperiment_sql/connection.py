"""Where the database is: URLs and engines, display, pickling, per-process engines, errors.

A backend must pickle (Dask ships it to workers) but a SQLAlchemy ``Engine`` holds a
pool of sockets. :class:`ConnectionSpec` is the picklable description an engine is
rebuilt from: the URL (with its password, needed to reconnect on a worker; never shown).
Each process keeps one engine per URL (:func:`engine_for`), so every backend of a
process shares one pool and a forked or spawned worker builds its own.

SQLAlchemy is imported only when an engine is built or an error translated.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from daskperiment.errors import BackendError, BackendUnavailableError

if TYPE_CHECKING:
    import sqlalchemy

logger = logging.getLogger("daskperiment.sql")

#: URI schemes this plugin registers; the driver each one uses.
DRIVERS = {
    "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg",
    "sqlite": "sqlite", "mysql": "mysql+pymysql", "mysql+pymysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql", "mariadb+pymysql": "mariadb+pymysql",
}
SCHEMES = tuple(DRIVERS)

#: Seconds to give up connecting: an unreachable server is a clear error within seconds.
CONNECT_TIMEOUT = 5
#: SQLite waits this long for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT = 60.0


def normalise_url(uri: str) -> str:
    """``uri`` with the driver this plugin uses (psycopg 3, PyMySQL): ``postgres://`` → ``postgresql+psycopg://``."""
    scheme, sep, rest = uri.partition("://")
    driver = DRIVERS.get(scheme.lower())
    if not sep or driver is None:
        raise BackendError(f"SQLBackend needs a database URL ({', '.join(s + '://' for s in SCHEMES)}), got "
                           f"{display_url(uri)!r}.")
    if driver == "sqlite" and rest in ("", "/", "/:memory:"):
        raise BackendError(f"SQLBackend({uri!r}): an in-memory SQLite database lives in one connection of one "
                           "process, but Dask workers and later sessions must see the trials. Use a file: "
                           "sqlite:///experiments.db (relative) or sqlite:////abs/path/experiments.db.")
    return f"{driver}://{rest}"


def display_url(uri: str) -> str:
    """``uri`` with its password masked (``user:***@host``), the host kept as written."""
    scheme, sep, rest = uri.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    return f"{scheme}{sep}{netloc}{slash}{tail}"


@dataclass(frozen=True)
class ConnectionSpec:
    """What an engine is (re)built from."""

    url: str  #: normalised URL, password included
    display: str  #: for repr, logs and errors: password masked

    @classmethod
    def from_uri(cls, uri: str) -> ConnectionSpec:
        return cls(url=normalise_url(uri), display=display_url(uri))

    @classmethod
    def from_engine(cls, engine: sqlalchemy.Engine) -> ConnectionSpec:
        url = engine.url
        if url.get_backend_name() not in ("postgresql", "sqlite", "mysql", "mariadb"):
            raise BackendError(f"SQLBackend supports PostgreSQL, SQLite and MariaDB/MySQL engines, got a "
                               f"{url.get_backend_name()!r} engine ({url!r}).")
        if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
            raise BackendError(f"SQLBackend needs the psycopg (3) driver for PostgreSQL, got {url.drivername!r}: "
                               "create_engine('postgresql+psycopg://…').")
        return cls(url=normalise_url(url.render_as_string(hide_password=False)),
                   display=display_url(url.render_as_string(hide_password=True)))

    @property
    def password(self) -> str | None:
        return urlsplit(self.url).password

    @property
    def dialect(self) -> str:
        """``postgresql``, ``sqlite`` or ``mysql`` (MariaDB too)."""
        name = self.url.split("://", 1)[0].split("+", 1)[0]
        return "mysql" if name == "mariadb" else name


_engines: dict[tuple[int, str], Any] = {}
_engines_lock = threading.Lock()


def engine_for(spec: ConnectionSpec) -> sqlalchemy.Engine:
    """This process's engine for ``spec.url`` (built on first use, shared by every backend)."""
    return _cached_engine(spec.url, lambda: build_engine(spec))


def _cached_engine(name: str, build: Callable[[], sqlalchemy.Engine]) -> sqlalchemy.Engine:
    """The engine this process keeps under ``name``, built once by ``build`` (engines hold
    pools and sockets: one per process, never inherited across a fork)."""
    key = (os.getpid(), name)
    engine = _engines.get(key)
    if engine is None:
        with _engines_lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _engines[key] = build()
    return engine


def sqlite_path(spec: ConnectionSpec) -> str:
    """The database file of a ``sqlite://`` spec (relative to the working directory, as SQLite reads it)."""
    import sqlalchemy

    return str(sqlalchemy.make_url(spec.url).database)


def read_only_engine(spec: ConnectionSpec) -> sqlalchemy.Engine | None:
    """The engine a read-only view reads with; ``None`` for a SQLite file that does not exist.

    A server database is read through the process's engine (reads there lock no writer and
    create nothing). A SQLite file is opened ``mode=ro`` — never ``journal_mode=WAL`` or
    any other write — with one connection per transaction (no pool): while no ``-wal``
    file exists no writer has the database open, and the file is read as ``immutable`` so
    that SQLite creates no ``-wal``/``-shm`` file either (a directory the reader cannot
    write works); once a writer's ``-wal`` exists, the next transaction reads through it.
    """
    if spec.dialect != "sqlite":
        return engine_for(spec)
    path = sqlite_path(spec)
    if not os.path.isfile(path):
        return None
    return _cached_engine("read-only:" + spec.url, lambda: _build_sqlite_reader(path))


def _build_sqlite_reader(path: str) -> sqlalchemy.Engine:
    import pathlib
    import sqlite3

    import sqlalchemy
    from sqlalchemy import event

    location = pathlib.Path(path).absolute()

    def connect() -> sqlite3.Connection:
        immutable = not location.with_name(location.name + "-wal").exists()
        uri = location.as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
        return sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None,
                               check_same_thread=False)

    engine = sqlalchemy.create_engine("sqlite://", creator=connect, poolclass=sqlalchemy.pool.NullPool)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:  # one snapshot per transaction (sqlite3 itself would not begin one)
        conn.exec_driver_sql("BEGIN")

    return engine


def build_engine(spec: ConnectionSpec) -> sqlalchemy.Engine:
    import sqlalchemy

    url = sqlalchemy.make_url(spec.url)
    kwargs: dict[str, Any] = {}
    if spec.dialect == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False}
    else:
        # no ping per checkout: a connection found dead is retried once (see SQLBackend._transaction)
        kwargs["pool_size"] = 8
        kwargs["pool_use_lifo"] = True  # reuse the warm connection (its prepared statements) first
        if "connect_timeout" not in url.query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        engine = sqlalchemy.create_engine(url, **kwargs)
    except (ImportError, sqlalchemy.exc.ArgumentError) as exc:
        raise BackendError(f"SQLBackend({spec.display!r}): cannot use this URL ({exc}). PostgreSQL needs "
                           "psycopg 3 and MariaDB/MySQL PyMySQL: pip install 'daskperiment[sql]'.") from exc
    if spec.dialect == "sqlite":
        install_sqlite_transactions(engine)
    else:
        install_dead_connection_check(engine)
    return engine


def install_dead_connection_check(engine: sqlalchemy.Engine) -> None:
    """Replace a pooled connection whose server hung up, before it is used: no round trip.

    An idle client connection has nothing to read; when its socket is readable, the server
    closed it (restart, crash, idle timeout). Checking that at checkout costs a ``select``
    call instead of the ``SELECT 1`` of ``pool_pre_ping``, so after a server restart the
    next trial simply works, and single-statement writes need no retry that could repeat one.
    """
    from sqlalchemy import event, exc

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        problem = hung_up(dbapi_connection)
        if problem is not None:
            raise exc.DisconnectionError(problem)


def hung_up(dbapi_connection: Any) -> str | None:
    """Why an idle driver connection is unusable (its server closed it), ``None`` when it looks alive."""
    import select

    fileno = _socket_fileno(dbapi_connection)
    if fileno is None or fileno < 0:
        return "connection closed"
    try:
        readable, _, _ = select.select([fileno], [], [], 0)
    except (OSError, ValueError) as error:
        return str(error)
    return "the server closed the connection while it was idle" if readable else None


def _socket_fileno(dbapi_connection: Any) -> int | None:
    """The socket of a psycopg or PyMySQL connection."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is not None:
        try:
            return int(pgconn.socket)
        except Exception:  # noqa: BLE001 - psycopg raises when the connection is closed
            return None
    sock = getattr(dbapi_connection, "_sock", None)
    return None if sock is None else sock.fileno()


class HeldConnection:
    """One autocommit connection an engine keeps checked out for the one-statement writes of each trial.

    A trial on PostgreSQL is two statements (start, complete); taking a connection from the
    pool and putting it back around each cost ~0.06 ms of client time a statement (measured:
    a fifth of the backend's share of a trial). The held connection skips that: it is
    checked for a hang-up before each use exactly as a pooled one is at checkout (so a
    server restart is noticed at once), and replaced after any error. One per engine and
    process, whatever the number of backends; a caller that finds it in use by another
    thread takes the pool's way instead.
    """

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._conn: sqlalchemy.Connection | None = None

    @contextmanager
    def borrow(self) -> Iterator[sqlalchemy.Connection | None]:
        """The held connection (opened when missing or hung up), or ``None`` while another thread uses it."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            conn = self._conn
            if conn is not None and (conn.invalidated or hung_up(conn.connection.dbapi_connection) is not None):
                self._discard()
                conn = None
            if conn is None:
                conn = self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                yield conn
            except BaseException:
                self._discard()  # its state is unknown (an interrupted statement): a fresh one next time
                raise
            if conn.in_transaction():  # SQLAlchemy began one for an execute(): nothing to send in autocommit
                conn.commit()
        finally:
            self._lock.release()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.invalidate()
            conn.close()

    def release(self) -> None:
        """Give the connection back to the pool (waits for a thread using it)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


_held: dict[tuple[int, int], HeldConnection] = {}


def held_connection(engine: sqlalchemy.Engine) -> HeldConnection:
    """This process's :class:`HeldConnection` of ``engine`` (a forked child gets its own: the
    parent's socket is not its to use)."""
    key = (os.getpid(), id(engine))
    held = _held.get(key)
    if held is None or held.engine is not engine:  # (a new engine may reuse a collected one's id)
        with _engines_lock:
            held = _held.get(key)
            if held is None or held.engine is not engine:
                held = _held[key] = HeldConnection(engine)
    return held


def release_held(engine: sqlalchemy.Engine) -> None:
    """Return ``engine``'s held connection of this process to its pool (before disposing the pool)."""
    held = _held.pop((os.getpid(), id(engine)), None)
    if held is not None:
        held.release()


def adopt_engine(spec: ConnectionSpec, engine: sqlalchemy.Engine) -> None:
    """Use the caller's engine in this process (its pool, its ``connect_args``)."""
    if spec.dialect == "sqlite":
        install_sqlite_transactions(engine)
    with _engines_lock:
        _engines.setdefault((os.getpid(), spec.url), engine)


def install_sqlite_transactions(engine: sqlalchemy.Engine) -> None:
    """WAL mode, and real transactions: ``BEGIN IMMEDIATE`` for writes, ``BEGIN`` for reads.

    Python's sqlite3 module starts transactions itself (late, as ``DEFERRED``); a deferred
    transaction that reads and then writes cannot wait for the lock and fails at once with
    "database is locked" when another process writes. Taking the write lock up front makes
    concurrent writers queue for it (``timeout``) instead (SQLAlchemy's documented recipe).
    """
    from sqlalchemy import event

    if getattr(engine, "_daskperiment_sqlite", False):
        return
    engine._daskperiment_sqlite = True  # type: ignore[attr-defined]

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("daskperiment_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _use_wal(cursor: Any) -> None:
    """Switch the database to WAL unless it is already (it stays WAL: a file switched once by
    any process needs nothing more).

    The switch needs the database to itself, and SQLite does not wait for it with the busy
    timeout: two processes opening a rollback-journal database at once (an old database being
    migrated, say) would see "database is locked" at once. The switch is retried until the
    busy timeout, and a database another process switched meanwhile is left as it is.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def translate_error(exc: BaseException, display: str, action: str, secret: str | None) -> BaseException | None:
    """The daskperiment error for a SQLAlchemy/driver exception (``None`` when ``exc`` is not one)."""
    import sqlalchemy.exc as sae

    if not isinstance(exc, sae.SQLAlchemyError):
        return None
    cause = f"{type(getattr(exc, 'orig', None) or exc).__name__}: {getattr(exc, 'orig', None) or exc}".strip()
    cause = cause.splitlines()[0] if cause else cause
    if secret:
        cause = cause.replace(secret, "***")
    where = f"SQLBackend({display!r})"
    disconnected = isinstance(exc, sae.DBAPIError) and exc.connection_invalidated
    if disconnected or isinstance(exc, (sae.OperationalError, sae.InterfaceError, sae.TimeoutError)):
        text = cause.lower()
        if "password" in text or "authentication" in text or "access denied" in text:
            return BackendUnavailableError(
                f"{where}: authentication failed while {action} ({cause}). Check the user name and password "
                "in the URL (URL-encode special characters).")
        if "locked" in text and "sqlite" in display:
            return BackendUnavailableError(
                f"{where}: the SQLite database stayed locked by another writer for {SQLITE_BUSY_TIMEOUT:.0f} s "
                f"while {action} ({cause}). A process may hold a long transaction; on a network file system "
                "SQLite locking is unreliable: use PostgreSQL for shared experiments.")
        return BackendUnavailableError(
            f"{where}: cannot reach the database while {action} ({cause}). Check that the server is running "
            "and reachable. Each write is one transaction, so nothing already stored was damaged; the next "
            "call reconnects once the server is back.")
    if isinstance(exc, sae.ProgrammingError) and "permission denied" in cause.lower():
        return BackendError(f"{where}: permission denied while {action} ({cause}). The database user may read "
                            "but not write: grant INSERT/UPDATE/DELETE on the dp_* tables to write trials.")
    return BackendError(f"{where}: the database refused {action} ({cause}).")


def execute_raw(conn: sqlalchemy.Connection, sql: str, params: Any = None, binary: bool = False,
                many: bool = False, returning: bool = False) -> list[Any]:
    """Rows of ``sql`` from the driver's own cursor (no SQLAlchemy rows: large reads, hot paths).

    ``many``: ``sql`` once per parameter set (``executemany``); with ``returning`` (psycopg),
    the rows of each, one list per parameter set, the whole batch in one round trip.
    Driver errors become SQLAlchemy's, and a lost connection is invalidated, exactly as
    for statements SQLAlchemy runs, so retries and error messages work the same.
    """
    import sqlalchemy.exc as sae

    dbapi: Any = conn.connection.dbapi_connection
    cursor = dbapi.cursor(binary=True) if binary else dbapi.cursor()
    try:
        if many and returning:  # psycopg: one result set per parameter set, all in one round trip (pipeline)
            cursor.executemany(sql, params, returning=True)
            results = [cursor.fetchall()]
            while cursor.nextset():
                results.append(cursor.fetchall())
            return results
        if many:
            cursor.executemany(sql, params)
            return []
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []
    except conn.dialect.loaded_dbapi.Error as error:
        disconnected = conn.dialect.is_disconnect(error, dbapi, cursor)
        if disconnected:
            conn.invalidate(error)
        raise sae.DBAPIError.instance(sql, params, error, conn.dialect.loaded_dbapi.Error,
                                      connection_invalidated=disconnected, dialect=conn.dialect) from error
    finally:
        try:
            cursor.close()
        except conn.dialect.loaded_dbapi.Error:
            pass  # the connection is gone already
