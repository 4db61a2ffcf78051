"""Create and upgrade the schema automatically, safely when many processes open one database.

Each process checks ``dp_schema_version`` once per engine. When it is current nothing is
written (so read-only users can read). When it is older, the process takes a
database-wide lock — ``pg_advisory_lock`` on PostgreSQL, ``GET_LOCK`` on MariaDB/MySQL,
``BEGIN IMMEDIATE`` on SQLite — reads the version again (another process may have
migrated meanwhile), applies the missing steps in order and records each version as it
goes. A version newer than :data:`~.schema.SCHEMA_VERSION` is an error: this code would
misread or damage data written by a newer release.

The steps (append one per schema change, never edit a released one):

1. the storage tables;
2. the typed parameters table (filled from the trials' JSON parameters) and the
   documented ``daskperiment_*`` views;
3. ``dp_trials.heartbeat`` (filled from the ``heartbeat`` that version 2 kept in
   ``start_extra``), so that ``Backend.beat`` can refresh it; ``daskperiment_trials`` shows it.

MariaDB commits every DDL statement on its own, so a process killed in the middle of a
step there leaves part of it done and the next process runs the whole step again: step 3
checks for its column before adding it and moves only heartbeats still in ``start_extra``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from daskperiment.errors import BackendError

from . import codec, schema

if TYPE_CHECKING:
    import sqlalchemy

logger = logging.getLogger("daskperiment.sql")

#: ``pg_advisory_lock`` key: the bytes of "daskperiment" folded into a signed 64-bit number.
POSTGRES_LOCK_KEY = int.from_bytes(b"dskprmnt", "big") - (1 << 63)
MYSQL_LOCK_NAME = "daskperiment_schema"
LOCK_TIMEOUT = 300  # seconds another process may spend migrating before we give up


class SchemaTooNewError(BackendError):
    """The database was written by a newer daskperiment-sql than this one."""


def _create_tables(conn: sqlalchemy.Connection) -> None:
    schema.metadata.create_all(conn, tables=schema.VERSION_1_TABLES)  # checkfirst: idempotent
    if conn.dialect.name == "postgresql":  # metric and persisted blobs do not compress: skip trying
        conn.exec_driver_sql("ALTER TABLE dp_metrics ALTER COLUMN epochs SET STORAGE EXTERNAL, "
                             "ALTER COLUMN vals SET STORAGE EXTERNAL")
        conn.exec_driver_sql("ALTER TABLE dp_persisted ALTER COLUMN data SET STORAGE EXTERNAL")
        conn.exec_driver_sql("ALTER TABLE dp_cache_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def _create_query_layer(conn: sqlalchemy.Connection) -> None:
    import sqlalchemy as sa

    schema.metadata.create_all(conn, tables=schema.VERSION_2_TABLES)
    trials = schema.trials
    rows = conn.execute(sa.select(trials.c.experiment_pk, trials.c.trial_id, trials.c.parameters)).all()
    typed = [row for pk, trial_id, text in rows for row in codec.parameter_rows(pk, trial_id, codec.loads_column([text])[0])]
    for start in range(0, len(typed), 5_000):
        conn.execute(schema.parameters.insert(), typed[start:start + 5_000])
    _replace_views(conn, 2)


def _replace_views(conn: sqlalchemy.Connection, version: int) -> None:
    for statement in (*schema.drop_view_statements(conn.dialect.name),
                      *schema.view_statements(conn.dialect.name, version)):
        conn.exec_driver_sql(statement)


def _add_heartbeat(conn: sqlalchemy.Connection) -> None:
    """Give ``dp_trials`` its ``heartbeat`` column and move each trial's heartbeat out of ``start_extra``."""
    import sqlalchemy as sa

    if "heartbeat" not in {column["name"] for column in sa.inspect(conn).get_columns("dp_trials")}:
        kind = sa.Double().compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE dp_trials ADD COLUMN heartbeat {kind}")
    trials = schema.trials
    rows = conn.execute(sa.select(trials.c.experiment_pk, trials.c.trial_id, trials.c.start_extra)
                        .where(trials.c.start_extra.like('%"heartbeat"%'))).all()
    moved = []
    for pk, trial_id, text in rows:
        extra = codec.loads_column([text])[0]
        if not isinstance(extra, dict) or "heartbeat" not in extra:
            continue
        heartbeat = extra.pop("heartbeat")
        moved.append({"pk": pk, "id": trial_id, "heartbeat": heartbeat if isinstance(heartbeat, (int, float)) else None,
                      "extra": codec.dumps(extra) if extra else None})
    update = (trials.update().where(trials.c.experiment_pk == sa.bindparam("pk"), trials.c.trial_id == sa.bindparam("id"))
              .values(heartbeat=sa.bindparam("heartbeat"), start_extra=sa.bindparam("extra")))
    for start in range(0, len(moved), 5_000):
        conn.execute(update, moved[start:start + 5_000])
    _replace_views(conn, 3)


STEPS: dict[int, Callable[[sqlalchemy.Connection], None]] = {1: _create_tables, 2: _create_query_layer,
                                                              3: _add_heartbeat}
assert max(STEPS) == schema.SCHEMA_VERSION

_checked: set[int] = set()
_checked_lock = threading.Lock()


def read_version(conn: sqlalchemy.Connection) -> int:
    """The database's schema version, 0 when it has none of our tables."""
    import sqlalchemy as sa

    if not sa.inspect(conn).has_table("dp_schema_version"):
        return 0
    version = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar()
    return int(version or 0)


def _check_not_newer(version: int, display: str) -> None:
    if version > schema.SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"SQLBackend({display!r}): the database has schema version {version}, newer than this "
            f"daskperiment-sql understands ({schema.SCHEMA_VERSION}); nothing was read or written. Upgrade: "
            "pip install -U 'daskperiment[sql]'.")


def readable_version(engine: sqlalchemy.Engine, display: str) -> int:
    """The schema version a read-only view finds (0: none of our tables yet), checked, never changed.

    Every version this code migrates from is readable: the tables reads use are version 1's,
    and a trial's ``heartbeat`` sits in ``start_extra`` before version 3 (reads take it from there).
    """
    with engine.connect() as conn:
        version = read_version(conn)
        conn.rollback()
    _check_not_newer(version, display)
    return version


def ensure_schema(engine: sqlalchemy.Engine, display: str, target: int = schema.SCHEMA_VERSION) -> None:
    """Bring the database to ``target`` (once per engine and process; a no-op when current)."""
    if id(engine) in _checked and target == schema.SCHEMA_VERSION:
        return
    with engine.connect() as conn:
        version = read_version(conn)
        conn.rollback()
    _check_not_newer(version, display)
    if version < target:
        with _schema_lock(engine) as conn:
            _upgrade(conn, display, target)
    if target == schema.SCHEMA_VERSION:
        with _checked_lock:
            _checked.add(id(engine))


def _upgrade(conn: sqlalchemy.Connection, display: str, target: int) -> None:
    """Apply the steps after the current version, under the caller's lock."""
    version = read_version(conn)
    _check_not_newer(version, display)
    for step in range(version + 1, target + 1):
        logger.info("SQLBackend(%r): migrating the schema to version %d", display, step)
        STEPS[step](conn)
        conn.execute(schema.schema_version.delete())
        conn.execute(schema.schema_version.insert().values(version=step))
        if conn.dialect.name != "sqlite":  # PostgreSQL: one transaction per step; SQLite: one for all
            conn.commit()


@contextmanager
def _schema_lock(engine: sqlalchemy.Engine) -> Iterator[sqlalchemy.Connection]:
    """A connection holding the database-wide migration lock."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        with engine.connect().execution_options(daskperiment_write=True) as conn, conn.begin():
            yield conn  # BEGIN IMMEDIATE: the write lock until COMMIT; SQLite DDL is transactional
        return
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}s'")
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({POSTGRES_LOCK_KEY})")
        else:
            got = conn.exec_driver_sql(f"SELECT GET_LOCK('{MYSQL_LOCK_NAME}', {LOCK_TIMEOUT})").scalar()
            if got != 1:
                raise BackendError(f"another process held the schema lock {MYSQL_LOCK_NAME!r} for "
                                   f"{LOCK_TIMEOUT} s while migrating; try again.")
        conn.commit()
        try:
            yield conn
            conn.commit()
        finally:
            conn.rollback()
            if dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({POSTGRES_LOCK_KEY})")
                conn.exec_driver_sql("RESET lock_timeout")
            else:
                conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{MYSQL_LOCK_NAME}')")
            conn.commit()
