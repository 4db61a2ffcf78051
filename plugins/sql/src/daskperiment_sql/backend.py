"""SQLBackend: experiments in PostgreSQL, SQLite or MariaDB/MySQL, queryable in plain SQL.

Why it is shaped this way:

* many experiments share one database: every row carries its experiment's key, and
  ``dp_experiments.last_trial_id`` is the trial id counter, incremented inside the
  transaction that writes the trial (and its typed parameters): concurrent processes get
  distinct ids and no id exists without its record;
* every write is one transaction, so a server or process dying mid-call leaves the
  previous state intact;
* the schema is versioned and migrated under a database-wide lock (:mod:`.migrate`);
* metadata is JSON text plus typed copies for SQL (:mod:`.codec`); only persisted step
  results and non-plain trial results are pickles, stored as bytes and unpickled by
  daskperiment only on request;
* SQLAlchemy Core, not the ORM, and the driver's own cursor where it pays (binary bytea
  reads with psycopg); SQLAlchemy is imported when a backend first talks to the database;
* :meth:`SQLBackend.read_only` (the dashboard, the reports, every read of an Experiment)
  never writes, creates no file, database or table and migrates nothing: SQLite is opened
  ``mode=ro``, and a database of an older schema version is read as it is.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from daskperiment.backends import Backend
from daskperiment.errors import BackendError
from daskperiment.records import (
    HISTORY_FIELDS,
    JSON_FIELDS,
    STEP_HASH_LIMIT,
    TRIAL_FIELDS,
    CacheEntry,
    MetricSeries,
    empty_record,
)

from . import codec, generic, postgres
from .connection import (
    ConnectionSpec,
    adopt_engine,
    engine_for,
    execute_raw,
    held_connection,
    read_only_engine,
    release_held,
    translate_error,
)

if TYPE_CHECKING:
    import sqlalchemy

logger = logging.getLogger("daskperiment.sql")

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")

#: Ids per ``IN (…)`` list: far below every dialect's limit on bound parameters.
BATCH_IDS = 5_000
#: Purity entries written between two prunings of the oldest inputs (pruning is a scan).
PRUNE_EVERY = 64


def schema_version() -> int:
    """The schema version this code writes (imported on use: the schema module imports SQLAlchemy)."""
    from .schema import SCHEMA_VERSION

    return SCHEMA_VERSION


def _guarded(action: str) -> Callable[[_F], _F]:
    """Turn SQLAlchemy/driver errors raised by a method into daskperiment errors naming the URL."""
    def decorate(method: _F) -> _F:
        @functools.wraps(method)
        def wrapper(self: SQLBackend, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                error = translate_error(exc, self.uri, action, self._spec.password)
                if error is None:
                    raise
                raise error from exc
        return wrapper  # type: ignore[return-value]
    return decorate


def _batches(ids: list[int]) -> Iterable[list[int]]:
    return (ids[i:i + BATCH_IDS] for i in range(0, len(ids), BATCH_IDS))


def _first(row: Any) -> Any:
    return row[0]


def _latest(entries: list[tuple[str, str, str]]) -> dict[tuple[str, str], str]:
    """The last output per ``(step, input)``: what is stored after the batch."""
    return {(step, input_hash): output_hash for step, input_hash, output_hash in entries}


def _previous(entries: list[tuple[str, str, str]], known: dict[tuple[str, str], str]) -> list[str | None]:
    """The output stored before each entry (a later entry sees an earlier one of the same batch)."""
    seen = dict(known)
    previous: list[str | None] = []
    for step, input_hash, output_hash in entries:
        previous.append(seen.get((step, input_hash)))
        seen[(step, input_hash)] = output_hash
    return previous


class SQLBackend(Backend):
    """Stores experiments in a SQL database: ``SQLBackend("mnist", "postgresql://user:pw@host/db")``.

    ``target`` is a URL (``postgresql://``, ``postgresql+psycopg://``, ``postgres://``,
    ``sqlite:///path.db``, ``mysql+pymysql://``, ``mariadb+pymysql://``, ``mysql://``,
    ``mariadb://``) or a ``sqlalchemy.Engine`` of those dialects.
    """

    scheme = "postgresql"

    def __init__(self, experiment_id: str, target: str | sqlalchemy.Engine) -> None:
        super().__init__(experiment_id)
        if isinstance(target, str):
            self._spec = ConnectionSpec.from_uri(target)
            self._given_engine = None
        else:
            self._spec = ConnectionSpec.from_engine(target)
            self._given_engine = target
        self.is_read_only = False
        self._init_connection_state()

    def _init_connection_state(self) -> None:
        self._engine: sqlalchemy.Engine | None = None
        #: the schema version reads may assume: current for a writer (its engine migrates);
        #: what a read-only view found, re-checked on each read until current
        self._version = schema_version()
        self._experiment_pk: int | None = None
        self._lock = threading.Lock()
        self._unpruned = 0
        self._documents: set[tuple[str, str]] = set()  # saved by this object: save once

    # Dask ships backends to workers: ship the description, reconnect lazily there.
    def __getstate__(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "_spec": self._spec, "is_read_only": self.is_read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.experiment_id = state["experiment_id"]
        self._spec = state["_spec"]
        self.is_read_only = state.get("is_read_only", False)
        self._given_engine = None
        self._init_connection_state()

    def read_only(self) -> SQLBackend:
        """The same experiment for reading only: no write, no file or table created, no migration.

        SQLite is opened ``mode=ro`` (see :func:`.connection.read_only_engine`); a missing
        file or a database without our tables reads as empty; a database of an older schema
        version is read as it is (the first writer migrates it); a newer one is
        :class:`~.migrate.SchemaTooNewError`. Writing through the view is an error.
        """
        if self.is_read_only:
            return self
        view = type(self).__new__(type(self))
        Backend.__init__(view, self.experiment_id)
        view._spec, view._given_engine, view.is_read_only = self._spec, self._given_engine, True
        view._init_connection_state()
        return view

    @property
    def uri(self) -> str:
        return self._spec.display

    @property
    def dialect(self) -> str:
        """``postgresql``, ``sqlite`` or ``mysql`` (MariaDB too)."""
        return self._spec.dialect

    # ---- connection -----------------------------------------------------------------------
    def engine(self) -> sqlalchemy.Engine:
        """The engine, its schema checked (and migrated) on first use in this process."""
        engine = self._engine
        if engine is None and self.is_read_only:
            if not self._readable():
                raise BackendError(f"SQLBackend({self.uri!r}): no daskperiment experiment is stored there yet.")
            engine = self._engine
            assert engine is not None
        elif engine is None:
            with self._lock:
                if self._engine is None:
                    from .migrate import ensure_schema

                    if self._given_engine is not None:
                        adopt_engine(self._spec, self._given_engine)
                    engine = engine_for(self._spec)
                    ensure_schema(engine, self.uri)
                    logger.debug("experiment %r stored at %s", self.experiment_id, self.uri)
                    self._engine = engine
                engine = self._engine
        return engine

    def _readable(self) -> bool:
        """Whether a read-only view has tables to read (a missing SQLite file, or a database
        without our tables, reads as empty); checks the schema version without changing it."""
        if self._engine is not None and self._version == schema_version():
            return True
        from .migrate import readable_version

        with self._lock:
            if self._given_engine is not None and self.dialect != "sqlite":
                adopt_engine(self._spec, self._given_engine)
            engine = read_only_engine(self._spec)
            if engine is None:
                return False
            version = readable_version(engine, self.uri)
            if version == 0:
                return False
            self._version = version
            self._engine = engine
        return True

    def _check_writable(self) -> None:
        """A read-only view refuses a write before touching anything."""
        if self.is_read_only:
            raise BackendError(f"SQLBackend({self.uri!r}) was opened read-only (Backend.read_only()): write "
                               "through the backend the Experiment uses instead.")

    def _transaction(self, work: Callable[[sqlalchemy.Connection], _T], write: bool = True,
                     one_statement: bool = False) -> _T:
        """Run ``work`` in one transaction and commit it.

        A connection that died before the commit was sent (the server went down
        mid-transaction) means the transaction did not happen, so it is retried once on a
        fresh connection; a failure during the commit is never retried (the commit may
        have landed), and a server still down is an error at once. Connections that died
        while pooled are replaced at checkout (:mod:`.connection`). ``one_statement`` work
        runs in autocommit mode on PostgreSQL (one statement is atomic: no ``BEGIN`` and
        ``COMMIT`` round trips) and is not retried; it runs on the engine's held connection
        (:class:`.connection.HeldConnection`) when no other thread is using it.
        """
        import sqlalchemy as sa

        if write:
            self._check_writable()
        engine = self.engine()
        autocommit = one_statement and self.dialect == "postgresql"
        if autocommit:
            with held_connection(engine).borrow() as held:
                if held is not None:
                    return work(held)
        for attempt in (1, 2):
            committing = autocommit
            with engine.connect() as conn:
                try:
                    if autocommit:
                        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    elif write:
                        conn = conn.execution_options(daskperiment_write=True)
                    transaction = conn.begin()
                    result = work(conn)
                    committing = True
                    transaction.commit()
                    return result
                except sa.exc.DBAPIError as exc:
                    if attempt == 2 or committing or not exc.connection_invalidated:
                        raise
                    logger.info("SQLBackend(%r): connection lost (%s); retrying on a new connection",
                                self.uri, type(exc.orig).__name__)
        raise AssertionError("unreachable")


    def close(self) -> None:
        """Close this process's pooled connections to the database; they reopen on next use."""
        if self._engine is not None:
            release_held(self._engine)
            self._engine.dispose()

    def _pk(self, conn: sqlalchemy.Connection | None = None, create: bool = False) -> int | None:
        """The key of this experiment's row, created on the first write (reads never write)."""
        if self.is_read_only and not self._readable():
            return None
        if self._experiment_pk is not None:
            return self._experiment_pk
        import sqlalchemy as sa

        from .schema import experiments

        query = sa.select(experiments.c.experiment_pk).where(experiments.c.name == self.experiment_id)
        pk = conn.execute(query).scalar() if conn is not None else \
            self._transaction(lambda c: c.execute(query).scalar(), write=False)
        if pk is None and create:
            pk = self._create_experiment()
        if pk is not None:
            self._experiment_pk = int(pk)
        return self._experiment_pk

    def _create_experiment(self) -> int:
        import sqlalchemy as sa

        from .schema import experiments

        insert = experiments.insert().values(name=self.experiment_id, last_trial_id=0, created=time.time())
        try:
            return int(self._transaction(lambda conn: _first(conn.execute(insert).inserted_primary_key)))
        except sa.exc.IntegrityError:  # another process created it first
            query = sa.select(experiments.c.experiment_pk).where(experiments.c.name == self.experiment_id)
            return int(self._transaction(lambda conn: conn.execute(query).scalar_one(), write=False))

    def _writing_pk(self) -> int:
        self._check_writable()
        pk = self._pk(create=True)
        assert pk is not None
        return pk

    # ---- trials ------------------------------------------------------------------------------
    @_guarded("allocating a trial id")
    def start_trial(self, record: Mapping[str, Any]) -> int:
        pk = self._writing_pk()
        if self.dialect == "postgresql":
            return self._transaction(lambda conn: postgres.start_trial(conn, pk, record), one_statement=True)

        return self._transaction(lambda conn: generic.start_trial(conn, pk, record))

    @_guarded("allocating trial ids")
    def start_trials(self, records: Sequence[Mapping[str, Any]]) -> list[int]:
        """A sweep's start: every trial in one transaction (on PostgreSQL, one round trip), consecutive ids."""
        if not records:
            return []
        pk = self._writing_pk()
        if self.dialect == "postgresql":
            return self._transaction(lambda conn: postgres.start_trials(conn, pk, records))
        return self._transaction(lambda conn: [generic.start_trial(conn, pk, record) for record in records])

    def _insert_trial(self, conn: sqlalchemy.Connection, pk: int, trial_id: int, record: Mapping[str, Any],
                      outcome: Mapping[str, Any] | None = None) -> None:
        from .schema import parameters, trials

        row: dict[str, Any] = {"experiment_pk": pk, "trial_id": trial_id}
        row.update(codec.start_row(record, codec.TRIAL_COLUMNS))
        if outcome is not None:
            row.update(self._outcome_row(outcome))
        conn.execute(trials.insert(), row)
        typed = codec.parameter_rows(pk, trial_id, record.get("parameters"))
        if typed:
            conn.execute(parameters.insert(), typed)

    @staticmethod
    def _outcome_row(outcome: Mapping[str, Any]) -> dict[str, Any]:
        return codec.outcome_row(outcome, codec.TRIAL_COLUMNS)

    @_guarded("storing a trial outcome")
    def finish_trial(self, trial_id: int, outcome: Mapping[str, Any]) -> None:
        pk = self._writing_pk()
        self._transaction(lambda conn: self._update_outcome(conn, pk, trial_id, outcome))

    def _update_outcome(self, conn: sqlalchemy.Connection, pk: int, trial_id: int,
                        outcome: Mapping[str, Any]) -> None:
        generic.store_outcome(conn, pk, int(trial_id), self._outcome_row(outcome))

    @_guarded("recording a heartbeat")
    def beat(self, trial_ids: Sequence[int], timestamp: float) -> None:
        """One ``UPDATE`` of ``dp_trials.heartbeat`` for all the running trials (per 5,000 ids)."""
        ids = sorted({int(t) for t in trial_ids})
        if not ids:
            return
        self._check_writable()
        pk = self._pk()
        if pk is None:  # no trial of this experiment was ever stored
            return
        mark = "?" if self.dialect == "sqlite" else "%s"

        def store(conn: sqlalchemy.Connection) -> None:
            for batch in _batches(ids):
                execute_raw(conn, f"UPDATE dp_trials SET heartbeat = {mark} WHERE experiment_pk = {mark} AND "
                                  f"trial_id IN ({', '.join(map(str, batch))})", (float(timestamp), pk))

        self._transaction(store, one_statement=len(ids) <= BATCH_IDS)

    @_guarded("listing the experiments")
    def experiment_ids(self) -> list[str]:
        """Every experiment of the database that has trials (the dashboard's index)."""
        import sqlalchemy as sa

        from .schema import experiments

        if self.is_read_only and not self._readable():
            return []
        query = sa.select(experiments.c.name).where(experiments.c.last_trial_id > 0).order_by(experiments.c.name)
        return [str(name) for name in self._transaction(lambda conn: list(conn.execute(query).scalars()),
                                                         write=False)]

    @_guarded("reading the last trial id")
    def last_trial_id(self) -> int:
        import sqlalchemy as sa

        from .schema import experiments

        if self.is_read_only and not self._readable():
            return 0
        query = sa.select(experiments.c.last_trial_id).where(experiments.c.name == self.experiment_id)
        return int(self._transaction(lambda conn: conn.execute(query).scalar(), write=False) or 0)

    @_guarded("loading trials")
    def load_trials(self, trial_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        from .schema import trials

        pk = self._pk()
        if pk is None:
            return []
        stored = ("trial_id", *(f for f in TRIAL_FIELDS if f in codec.TRIAL_COLUMNS and
                                (f != "heartbeat" or self._version >= 3)), "start_extra", "outcome_extra")
        query = sa.select(*(trials.c[f] for f in stored)).where(trials.c.experiment_pk == pk)
        ids = None if trial_ids is None else sorted({int(t) for t in trial_ids})

        def read(conn: sqlalchemy.Connection) -> list[Any]:
            if ids is None:
                return list(conn.execute(query.order_by(trials.c.trial_id)).all())
            return [row for batch in _batches(ids) for row in conn.execute(
                query.where(trials.c.trial_id.in_(batch)).order_by(trials.c.trial_id)).all()]

        rows = self._transaction(read, write=False)
        if not rows:
            return []
        columns = dict(zip(stored, ([*c] for c in zip(*rows))))
        for name in (*JSON_FIELDS, "start_extra", "outcome_extra"):
            if name in columns:
                columns[name] = codec.loads_column(columns[name])
        columns["result_pickle"] = [None if b is None else bytes(b) for b in columns["result_pickle"]]
        columns["success"] = [None if v is None else bool(v) for v in columns["success"]]
        records = []
        for i in range(len(rows)):
            record = empty_record(columns["trial_id"][i])
            record.update((name, column[i]) for name, column in columns.items())
            for extra in (record.pop("start_extra"), record.pop("outcome_extra")):
                if extra:  # a column wins: an older writer may still keep a field here that now has one
                    record.update((name, value) for name, value in extra.items() if record.get(name) is None)
            records.append(record)
        return records

    @_guarded("loading the history")
    def load_history(self, fields: Sequence[str] = HISTORY_FIELDS) -> dict[str, list[Any]]:
        """Only the columns asked for, in one query; JSON columns parsed with one ``json.loads`` each."""
        scalars = ["trial_id", "success", *(f for f in fields if f in codec.TRIAL_COLUMNS and
                                            f not in (*JSON_FIELDS, "trial_id", "success"))]
        texts = [f for f in JSON_FIELDS if f in fields or f in ("parameters", "result")]
        names = [*scalars, *texts]
        pk = self._pk()
        if pk is None:
            return {field: [] for field in names}
        sql = f"SELECT {', '.join(names)} FROM dp_trials WHERE experiment_pk = {int(pk)} ORDER BY trial_id"
        rows = self._transaction(lambda conn: execute_raw(conn, sql), write=False)
        if not rows:
            return {field: [] for field in names}
        columns = {name: list(column) for name, column in zip(names, zip(*rows))}
        for name in texts:
            columns[name] = codec.loads_column(columns[name])
        columns["success"] = [None if s is None else bool(s) for s in columns["success"]]
        return columns

    # ---- copying whole trials ------------------------------------------------------------------
    @_guarded("importing a trial")
    def import_trial(self, record: Mapping[str, Any]) -> None:
        """Store a whole trial under its own id (any id: gaps are kept); the counter follows."""
        from .schema import experiments, trials

        pk = self._writing_pk()
        trial_id = int(record["trial_id"])
        import sqlalchemy as sa

        def store(conn: sqlalchemy.Connection) -> None:
            exists = conn.execute(sa.select(trials.c.trial_id).where(
                trials.c.experiment_pk == pk, trials.c.trial_id == trial_id)).scalar()
            if exists is None:
                self._insert_trial(conn, pk, trial_id, record, record)
            elif record.get("finished") is not None or record.get("success") is not None:
                self._update_outcome(conn, pk, trial_id, record)
            conn.execute(experiments.update().where(experiments.c.experiment_pk == pk,
                                                    experiments.c.last_trial_id < trial_id)
                         .values(last_trial_id=trial_id))

        self._transaction(store)

    # ---- metrics -------------------------------------------------------------------------------
    @_guarded("saving metrics")
    def save_metrics(self, trial_id: int, key: str, epochs: np.ndarray, values: np.ndarray) -> None:
        from .schema import METRIC_CHUNK_POINTS, metrics

        if len(values) == 0:
            return
        pk = self._writing_pk()
        rows = [{"experiment_pk": pk, "trial_id": int(trial_id), "key": key, "n_points": n, "epoch_kind": kind,
                 "epochs": e, "vals": v, "value_kind": value_kind}
                for n, kind, e, v, value_kind in codec.metric_chunks(epochs, values, METRIC_CHUNK_POINTS, self._big_endian)]
        self._transaction(lambda conn: conn.execute(metrics.insert(), rows))

    @property
    def _big_endian(self) -> bool:
        return self.dialect == "postgresql"

    @_guarded("loading metrics")
    def load_metrics(self, key: str, trial_ids: Iterable[int]) -> dict[int, MetricSeries]:
        ids = sorted({int(t) for t in trial_ids})
        if not ids:
            return {}
        pk = self._pk()
        if pk is None:
            return {}
        def read(conn: sqlalchemy.Connection) -> list[Any]:
            return [row for batch in _batches(ids) for row in self._fetch_metric_rows(conn, pk, key, batch)]

        rows = self._transaction(read, write=False)
        return codec.decode_metrics(rows, self._big_endian)

    def _fetch_metric_rows(self, conn: sqlalchemy.Connection, pk: int, key: str, ids: list[int]) -> list[Any]:
        """Raw rows through the driver: psycopg reads bytea in binary (no hex text to decode)."""
        mark = "?" if self.dialect == "sqlite" else "%s"
        key_column = conn.dialect.identifier_preparer.quote("key")  # a reserved word in MariaDB
        sql = (f"SELECT trial_id, epoch_kind, epochs, vals, value_kind FROM dp_metrics WHERE experiment_pk = {mark} "
               f"AND {key_column} = {mark} AND trial_id IN ({', '.join(str(int(i)) for i in ids)}) ORDER BY seq")
        return execute_raw(conn, sql, (pk, key), binary=self.dialect == "postgresql")

    @_guarded("listing metric keys")
    def metric_keys(self, trial_id: int | None = None) -> list[str]:
        import sqlalchemy as sa

        from .schema import metrics

        pk = self._pk()
        if pk is None:
            return []
        query = sa.select(metrics.c.key).distinct().where(metrics.c.experiment_pk == pk)
        if trial_id is not None:
            query = query.where(metrics.c.trial_id == int(trial_id))
        return sorted(self._transaction(lambda conn: list(conn.execute(query).scalars()), write=False))

    # ---- persisted step results -----------------------------------------------------------------
    @_guarded("saving a persisted result")
    def save_persisted(self, step: str, trial_id: int, data: bytes) -> None:
        from .schema import persisted

        pk = self._writing_pk()
        where = (persisted.c.experiment_pk == pk, persisted.c.step == step, persisted.c.trial_id == int(trial_id))
        rows = [{"experiment_pk": pk, "step": step, "trial_id": int(trial_id), "chunk": i, "data": piece}
                for i, piece in enumerate(self._chunks(data))]

        def store(conn: sqlalchemy.Connection) -> None:
            conn.execute(persisted.delete().where(*where))
            conn.execute(persisted.insert(), rows)

        self._transaction(store)

    @_guarded("loading a persisted result")
    def load_persisted(self, step: str, trial_id: int) -> bytes | None:
        import sqlalchemy as sa

        from .schema import persisted

        pk = self._pk()
        if pk is None:
            return None
        query = sa.select(persisted.c.data).where(persisted.c.experiment_pk == pk, persisted.c.step == step,
                                                  persisted.c.trial_id == int(trial_id)).order_by(persisted.c.chunk)
        chunks = self._transaction(lambda conn: list(conn.execute(query).scalars()), write=False)
        return b"".join(bytes(c) for c in chunks) if chunks else None

    # ---- step cache ---------------------------------------------------------------------------------
    supports_cache = True

    @staticmethod
    def _chunks(data: bytes) -> list[bytes]:
        """Pieces of at most ``CHUNK_BYTES`` (MariaDB's packet limit); one empty piece for empty data."""
        from .schema import CHUNK_BYTES

        view = memoryview(data)
        return [bytes(view[i:i + CHUNK_BYTES]) for i in range(0, max(len(view), 1), CHUNK_BYTES)]

    @_guarded("saving a cached step output")
    def save_cached(self, digest: str, data: bytes) -> None:
        """Content-addressed: an entry already stored (by anyone) is left as it is."""
        import sqlalchemy as sa

        from .schema import cache_chunks, cache_entries

        pk = self._writing_pk()

        def store(conn: sqlalchemy.Connection) -> None:
            present = conn.execute(sa.select(cache_entries.c.digest).where(
                cache_entries.c.experiment_pk == pk, cache_entries.c.digest == digest)).scalar()
            if present is not None:
                return
            conn.execute(cache_entries.insert().values(experiment_pk=pk, digest=digest, size=len(data),
                                                       last_used=time.time()))
            conn.execute(cache_chunks.insert(), [{"experiment_pk": pk, "digest": digest, "chunk": i, "data": piece}
                                                 for i, piece in enumerate(self._chunks(data))])

        try:
            self._transaction(store)
        except sa.exc.IntegrityError:  # another process stored the same digest meanwhile: same content
            pass

    @_guarded("loading a cached step output")
    def load_cached(self, digest: str) -> bytes | None:
        import sqlalchemy as sa

        from .schema import cache_chunks, cache_entries

        pk = self._pk()
        if pk is None:
            return None

        def load(conn: sqlalchemy.Connection) -> list[Any]:
            pieces = list(conn.execute(sa.select(cache_chunks.c.data).where(
                cache_chunks.c.experiment_pk == pk, cache_chunks.c.digest == digest)
                .order_by(cache_chunks.c.chunk)).scalars())
            if pieces and not self.is_read_only:  # a reader leaves the recency order alone
                conn.execute(cache_entries.update().where(cache_entries.c.experiment_pk == pk,
                                                          cache_entries.c.digest == digest)
                             .values(last_used=time.time()))
            return pieces

        pieces = self._transaction(load, write=not self.is_read_only)
        return b"".join(bytes(p) for p in pieces) if pieces else None

    @_guarded("listing the step cache")
    def cached_entries(self) -> list[CacheEntry]:
        import sqlalchemy as sa

        from .schema import cache_entries as table

        pk = self._pk()
        if pk is None:
            return []
        query = sa.select(table.c.digest, table.c.size, table.c.last_used).where(table.c.experiment_pk == pk)
        rows = self._transaction(lambda conn: list(conn.execute(query.order_by(table.c.digest))), write=False)
        return [CacheEntry(str(d), int(s), float(u)) for d, s, u in rows]

    @_guarded("deleting cached step outputs")
    def delete_cached(self, digests: Iterable[str]) -> None:
        from .schema import cache_chunks, cache_entries

        self._check_writable()
        wanted = list(digests)
        pk = self._pk()
        if pk is None or not wanted:
            return

        def delete(conn: sqlalchemy.Connection) -> None:
            for table in (cache_chunks, cache_entries):
                for start in range(0, len(wanted), BATCH_IDS):
                    conn.execute(table.delete().where(table.c.experiment_pk == pk,
                                                      table.c.digest.in_(wanted[start:start + BATCH_IDS])))

        self._transaction(delete)

    # ---- documents ----------------------------------------------------------------------------------
    @_guarded("saving a document")
    def save_document(self, kind: str, digest: str, document: Mapping[str, Any]) -> None:
        if (kind, digest) in self._documents:
            return
        from .schema import documents

        pk = self._writing_pk()
        row = {"experiment_pk": pk, "kind": kind, "digest": digest, "body": codec.dumps(document)}
        self._transaction(lambda conn: conn.execute(self._insert_ignoring_duplicates(conn, documents), row))
        self._documents.add((kind, digest))

    @staticmethod
    def _insert_ignoring_duplicates(conn: sqlalchemy.Connection, table: sqlalchemy.Table) -> Any:
        name = conn.dialect.name
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            return insert(table).on_conflict_do_nothing()
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing()
        return table.insert().prefix_with("IGNORE")

    @_guarded("loading a document")
    def load_document(self, kind: str, digest: str) -> dict[str, Any] | None:
        import sqlalchemy as sa

        from .schema import documents

        pk = self._pk()
        if pk is None:
            return None
        query = sa.select(documents.c.body).where(documents.c.experiment_pk == pk, documents.c.kind == kind,
                                                  documents.c.digest == digest)
        body = self._transaction(lambda conn: conn.execute(query).scalar(), write=False)
        return None if body is None else codec.loads_column([body])[0]

    # ---- purity --------------------------------------------------------------------------------------
    @_guarded("swapping step hashes")
    def swap_step_hashes(self, entries: list[tuple[str, str, str]]) -> list[str | None]:
        if not entries:
            return []
        pk = self._writing_pk()
        return self._transaction(lambda conn: self._swap(conn, pk, entries))

    @_guarded("completing a trial")
    def complete_trial(self, trial_id: int, outcome: Mapping[str, Any],
                       step_hashes: list[tuple[str, str, str]]) -> list[str | None]:
        """Step hashes and outcome in one transaction (one commit per trial end, not two)."""
        pk = self._writing_pk()
        def complete(conn: sqlalchemy.Connection) -> list[str | None]:
            if self.dialect == "postgresql":
                latest = _latest(step_hashes)
                known = postgres.complete_trial(conn, pk, int(trial_id), self._outcome_row(outcome),
                                                self._stamped(latest))
                self._count_for_pruning(conn, pk, latest)
                return _previous(step_hashes, known)
            return self._complete_in(conn, pk, int(trial_id), outcome, step_hashes)

        try:
            return self._transaction(complete, one_statement=not self._prune_due(step_hashes))
        except BaseException:
            self.finish_trial(trial_id, outcome)  # the outcome is never lost with the hashes
            raise

    @_guarded("completing trials")
    def complete_trials(self, trials: Sequence[tuple[int, Mapping[str, Any], list[tuple[str, str, str]]]]
                        ) -> list[list[str | None]]:
        """A sweep's end: every outcome and step hash in one transaction (on PostgreSQL, one round
        trip), swapped in order; when that fails, every outcome is still stored, one by one."""
        if not trials:
            return []
        pk = self._writing_pk()

        def complete(conn: sqlalchemy.Connection) -> list[list[str | None]]:
            if self.dialect != "postgresql":
                return [self._complete_in(conn, pk, int(trial_id), outcome, hashes)
                        for trial_id, outcome, hashes in trials]
            latest = [_latest(hashes) for _, _, hashes in trials]
            known = postgres.complete_trials(conn, pk, [
                (int(trial_id), self._outcome_row(outcome), self._stamped(last))
                for (trial_id, outcome, _), last in zip(trials, latest)])
            for last in latest:
                self._count_for_pruning(conn, pk, last)
            return [_previous(hashes, before) for (_, _, hashes), before in zip(trials, known)]

        try:
            return self._transaction(complete)
        except BaseException:
            for trial_id, outcome, _ in trials:  # the outcomes are never lost with the hashes
                self.finish_trial(trial_id, outcome)
            raise

    def _complete_in(self, conn: sqlalchemy.Connection, pk: int, trial_id: int, outcome: Mapping[str, Any],
                     step_hashes: list[tuple[str, str, str]]) -> list[str | None]:
        previous = self._swap(conn, pk, step_hashes) if step_hashes else []
        self._update_outcome(conn, pk, trial_id, outcome)
        return previous

    def _swap(self, conn: sqlalchemy.Connection, pk: int, entries: list[tuple[str, str, str]]) -> list[str | None]:
        """Read the previous outputs, upsert the new ones with a recency stamp, prune now and then."""
        latest = _latest(entries)
        known = generic.swap_hashes(conn, pk, self._stamped(latest))
        self._count_for_pruning(conn, pk, latest)
        return _previous(entries, known)

    def _prune_due(self, entries: list[tuple[str, str, str]]) -> bool:
        return self._unpruned + len(entries) >= PRUNE_EVERY

    def _count_for_pruning(self, conn: sqlalchemy.Connection, pk: int, latest: dict[tuple[str, str], str]) -> None:
        self._unpruned += len(latest)
        if self._unpruned >= PRUNE_EVERY:
            self._unpruned = 0
            self._prune(conn, pk, {step for step, _ in latest})

    def _stamped(self, latest: dict[tuple[str, str], str]) -> list[tuple[str, str, str, int]]:
        """``(step, input, output, used)`` rows: a recency stamp in nanoseconds, increasing within the batch."""
        now = time.time_ns()
        return [(s, i, o, now + n) for n, ((s, i), o) in enumerate(latest.items())]

    @staticmethod
    def _prune(conn: sqlalchemy.Connection, pk: int, steps: set[str]) -> None:
        """Forget all but the newest :data:`STEP_HASH_LIMIT` inputs of each step."""
        import sqlalchemy as sa

        from .schema import step_hashes as table

        for step in steps:
            mine = (table.c.experiment_pk == pk, table.c.step == step)
            cutoff = conn.execute(sa.select(table.c.used).where(*mine).order_by(table.c.used.desc())
                                  .offset(STEP_HASH_LIMIT).limit(1)).scalar()
            if cutoff is not None:
                conn.execute(table.delete().where(*mine, table.c.used <= cutoff))
