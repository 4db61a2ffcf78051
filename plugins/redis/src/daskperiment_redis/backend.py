"""RedisBackend: an experiment shared through a Redis server (layout in :mod:`.keys`).

Why it is shaped this way:

* trial ids come from ``INCR`` inside a script that also writes the record, so
  processes and hosts writing one experiment get distinct ids and no id exists
  without its record;
* every write is one script or one ``MULTI`` transaction: a server or network
  failure never leaves half a record behind;
* reads are pipelined and bounded: a history of any size is one ``GET`` plus one
  pipeline of ``HMGET`` batches; ``KEYS``/``SCAN`` are never used;
* a trial start carries a random token (:data:`.scripts.START_TRIAL`): sent again, it
  returns the id it got instead of starting a second trial; a start that timed out is
  looked up by its token at the next start and, if the server did record it, closed as
  failed — never left looking like a running trial;
* values above :attr:`RedisBackend.value_chunk_bytes` (results, persisted results) are
  written in chunks to a temporary list renamed into place when complete: Redis refuses
  values over 512 MB, and a reader never sees half a value;
* metadata is JSON and metrics raw numbers (:mod:`.codec`); results and persisted step
  results are bytes encoded by core (``daskperiment.payloads``: pickles are signed and
  verified before loading).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

import numpy as np
from daskperiment.backends import Backend
from daskperiment import records
from daskperiment.records import HISTORY_FIELDS, START_FIELDS, STEP_HASH_LIMIT, TRIAL_FIELDS, CacheEntry, MetricSeries
from numpy.typing import NDArray

from . import scripts
from .codec import decode_metric_chunks, dumps, encode_metric_chunks
from .connection import ConnectionSpec, translate_error
from .keys import Keys

if TYPE_CHECKING:
    import redis

logger = logging.getLogger("daskperiment.redis")

#: Outcome fields kept in the outcome hash; the traceback and the pickle have hashes of their
#: own so that history never transfers them.
OUTCOME_FIELDS = tuple(f for f in records.OUTCOME_FIELDS if f not in ("traceback", "result_pickle"))
#: Trial ids per ``HMGET``: keeps each command short so other clients are not held up.
BATCH_IDS = 5_000
#: Bytes per stored value: far below Redis' 512 MB limit, and short enough to send within the
#: socket timeout on a slow link (16 MiB at 10 MB/s: 1.6 s).
VALUE_CHUNK_BYTES = 16 << 20
#: Seconds a start's token (and a partly written value) is kept.
TOKEN_SECONDS = 24 * 3600
#: Outcome marker of a result whose bytes are in :meth:`.Keys.result_chunks`.
CHUNKED = "result_chunked"
TIMED_OUT_START = ("Its start timed out (the Redis server did not answer in time) and the server recorded it "
                   "afterwards: the trial never ran.")

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _guarded(action: str) -> Callable[[Callable[Concatenate[RedisBackend, _P], _T]],
                                      Callable[Concatenate[RedisBackend, _P], _T]]:
    """Turn redis-py errors raised by a method into daskperiment errors naming the URI."""
    def decorate(method: Callable[Concatenate[RedisBackend, _P], _T]) -> Callable[Concatenate[RedisBackend, _P], _T]:
        @functools.wraps(method)
        def wrapper(self: RedisBackend, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                error = translate_error(exc, self.uri, action, self._spec.password)
                if error is None:
                    raise
                raise error from exc
        return wrapper
    return decorate


def _batches(ids: list[int]) -> Iterable[list[int]]:
    return (ids[i:i + BATCH_IDS] for i in range(0, len(ids), BATCH_IDS))


def _runs(ids: list[int]) -> list[int]:
    """Sorted ids as flat (first, last) pairs of consecutive runs: ``[1, 2, 3, 7]`` → ``[1, 3, 7, 7]``."""
    pairs = [ids[0]]
    for previous, current in itertools.pairwise(ids):
        if current != previous + 1:
            pairs += (previous, current)
    pairs.append(ids[-1])
    return pairs


class RedisBackend(Backend):
    """Stores an experiment in Redis: ``RedisBackend("x", "redis://host:6379/0")``.

    ``target`` is a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URI, a
    ``redis.ConnectionPool`` or a ``redis.Redis`` client (its pool is used).
    """

    scheme = "redis"
    #: Values larger than this are stored in chunks (set it per backend; tests use small values).
    value_chunk_bytes: int = VALUE_CHUNK_BYTES

    def __init__(self, experiment_id: str, target: str | redis.ConnectionPool | redis.Redis) -> None:
        super().__init__(experiment_id)
        self.keys = Keys(experiment_id)
        self._pool: redis.ConnectionPool | None = None
        if isinstance(target, str):
            self._spec = ConnectionSpec.from_uri(target)
        else:
            import redis  # already imported by the caller, who passed a redis object

            pool = target.connection_pool if isinstance(target, redis.Redis) else target  # a client: share its pool
            self._spec = ConnectionSpec.from_pool(pool)
            if not pool.connection_kwargs.get("decode_responses"):
                self._pool = pool  # else our own pool (from the spec) returns the raw bytes we need
        self._owns_pool = self._pool is None
        self._init_connection_state()

    def _init_connection_state(self) -> None:
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._unconfirmed: list[str] = []  # tokens of starts that timed out

    # Dask ships backends to workers: ship the description, reconnect lazily there.
    def __getstate__(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "_spec": self._spec, "value_chunk_bytes": self.value_chunk_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.experiment_id = state["experiment_id"]
        self._spec = state["_spec"]
        self.value_chunk_bytes = state.get("value_chunk_bytes", VALUE_CHUNK_BYTES)
        self.keys = Keys(self.experiment_id)
        self._pool, self._owns_pool = None, True
        self._init_connection_state()

    @property
    def uri(self) -> str:
        return self._spec.display

    # ---- connection -------------------------------------------------------
    def _redis(self) -> redis.Redis:
        """The client, created on first use. Pooled connections that died with a server
        restart are replaced by redis-py when checked out, so no call after the restart fails.

        Its replies are raw ``bytes``: a pool that decodes responses is never used (see
        ``__init__``), which redis-py's types cannot know (they say ``bytes | str``), so
        readers ``cast`` to ``bytes``."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    import redis

                    if self._pool is None:
                        self._pool = self._spec.build_pool()
                    logger.debug("experiment %r stored at %s", self.experiment_id, self.uri)
                    self._client = redis.Redis(connection_pool=self._pool)
                    self._scripts = {name: self._client.register_script(source) for name, source in (
                        ("start_trial", scripts.START_TRIAL), ("swap_step_hashes", scripts.SWAP_STEP_HASHES),
                        ("json_column", scripts.JSON_COLUMN))}
                client = self._client
        return client

    def _script(self, name: str) -> Any:
        """A registered Lua script (``EVALSHA``, reloaded by redis-py after a server restart)."""
        self._redis()
        return self._scripts[name]

    def close(self) -> None:
        """Disconnect our own pool; a pool the user passed is theirs to manage."""
        if self._owns_pool and self._pool is not None:
            self._pool.disconnect()

    # ---- trials -------------------------------------------------------------
    @_guarded("allocating a trial id")
    def start_trial(self, record: Mapping[str, Any]) -> int:
        import redis

        if self._unconfirmed:
            self._close_timed_out_starts()
        body = dumps({f: record.get(f) for f in START_FIELDS})
        token = uuid.uuid4().hex
        keys = [self.keys.counter, self.keys.trial_start, self.keys.start_token(token)]
        try:
            return int(self._script("start_trial")(keys=keys, args=[body, TOKEN_SECONDS]))
        except redis.TimeoutError:
            self._unconfirmed.append(token)  # the server may still run it: checked at the next start
            raise

    def _close_timed_out_starts(self) -> None:
        """Starts that timed out but were recorded by the server afterwards: closed as failed."""
        tokens, self._unconfirmed = self._unconfirmed, []
        for token, trial_id in zip(tokens, self._redis().mget([self.keys.start_token(t) for t in tokens])):
            if trial_id is not None:
                logger.warning("Trial %s of experiment %r was recorded after its start had timed out; it is "
                               "marked failed (it never ran).", int(trial_id), self.experiment_id)
                self.finish_trial(int(trial_id), {"success": False, "finished": time.time(),
                                                  "description": TIMED_OUT_START})

    @_guarded("recording a heartbeat")
    def beat(self, trial_ids: Sequence[int], timestamp: float) -> None:
        if trial_ids:
            value = repr(float(timestamp))
            self._redis().hset(self.keys.trial_heartbeat, mapping={int(t): value for t in trial_ids})

    @_guarded("storing a trial outcome")
    def finish_trial(self, trial_id: int, outcome: Mapping[str, Any]) -> None:
        k, tid = self.keys, int(trial_id)
        fields = {f: outcome.get(f) for f in OUTCOME_FIELDS}
        payload = outcome.get("result_pickle")
        partial = None
        if payload is not None and len(payload) > self.value_chunk_bytes:
            partial, payload, fields[CHUNKED] = self._write_partial(payload), None, True
        pipe = self._redis().pipeline(transaction=True)
        pipe.hset(k.trial_outcome, tid, dumps(fields))
        for key, value in ((k.trial_traceback, outcome.get("traceback")), (k.trial_pickle, payload)):
            if value is None:
                pipe.hdel(key, tid)  # a trial finished twice keeps only the last outcome
            else:
                pipe.hset(key, tid, value)
        self._place(pipe, partial, k.result_chunks(tid))
        pipe.execute()

    # ---- values of any size ------------------------------------------------------------
    def _write_partial(self, data: bytes) -> str:
        """Write ``data`` in chunks to a new expiring list; its key, for :meth:`_place`."""
        partial = self.keys.partial(uuid.uuid4().hex)
        view, size = memoryview(data), self.value_chunk_bytes
        pipe = self._redis().pipeline(transaction=False)
        for start in range(0, len(data), size):
            pipe.rpush(partial, view[start:start + size].tobytes())
        pipe.expire(partial, TOKEN_SECONDS)  # a write cut off halfway leaves nothing for long
        pipe.execute()
        return partial

    @staticmethod
    def _place(pipe: Any, partial: str | None, final: str) -> None:
        """In the caller's transaction: the complete chunks become ``final`` (or ``final`` goes)."""
        if partial is None:
            pipe.delete(final)
        else:
            pipe.rename(partial, final)
            pipe.persist(final)

    @_guarded("reading the last trial id")
    def last_trial_id(self) -> int:
        return int(self._redis().get(self.keys.counter) or 0)

    def _columns(self, ids: list[int], json_hashes: tuple[str, ...],
                 raw_hashes: tuple[str, ...] = ()) -> list[list[Any]]:
        """Values of ``ids`` from each hash, decoded JSON or raw bytes (``None`` when missing).

        One pipelined round trip of batches; JSON hashes are read through a script
        that returns each batch as one JSON array, parsed with one ``json.loads``.
        """
        json_column = self._script("json_column")
        pipe = self._redis().pipeline(transaction=False)
        for batch in _batches(ids):
            for name in json_hashes:
                json_column(keys=[name], args=_runs(batch), client=pipe)
            for name in raw_hashes:
                pipe.hmget(name, batch)
        replies = pipe.execute()
        width = len(json_hashes) + len(raw_hashes)
        columns = []
        for i, name in enumerate((*json_hashes, *raw_hashes)):
            if i >= len(json_hashes):
                columns.append([value for reply in replies[i::width] for value in reply])
                continue
            column: list[Any] = []
            for batch, reply in zip(_batches(ids), replies[i::width]):
                column += self._json_batch(name, batch, reply)
            columns.append(column)
        return columns

    def _json_batch(self, name: str, batch: list[int], reply: bytes) -> list[Any]:
        """One batch of a JSON hash: one ``json.loads``, or value by value when a value is not a
        JSON object (reported with its trial id and read as missing)."""
        values: list[Any] | None
        try:
            values = json.loads(reply)
        except ValueError:
            values = None
        if values is not None and len(values) == len(batch) and all(v is None or type(v) is dict for v in values):
            return values
        decoded: list[Any] = []
        for trial_id, raw in zip(batch, self._redis().hmget(name, batch)):
            try:
                value = None if raw is None else json.loads(raw)
            except ValueError as exc:
                value, problem = None, f"not JSON ({exc})"
            else:
                problem = f"not a JSON object but {type(value).__name__}"
            if value is not None and type(value) is not dict:
                value = None
            if raw is not None and value is None:
                self.report_corrupt(trial_id, f"its {name.rsplit(':', 1)[-1]} record is {problem}")
            decoded.append(value)
        return decoded

    def _ids(self, trial_ids: Iterable[int] | None) -> list[int]:
        if trial_ids is None:
            return list(range(1, self.last_trial_id() + 1))
        return sorted({int(t) for t in trial_ids if int(t) > 0})

    @_guarded("loading trials")
    def load_trials(self, trial_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        ids = self._ids(trial_ids)
        if not ids:
            return []
        k = self.keys
        starts, outcomes, tracebacks, pickles, beats = self._columns(
            ids, (k.trial_start, k.trial_outcome), (k.trial_traceback, k.trial_pickle, k.trial_heartbeat))
        records = []
        for trial_id, start, outcome, tb, pk, beat in zip(ids, starts, outcomes, tracebacks, pickles, beats):
            if start is None:  # never started: absent
                continue
            record = {"trial_id": trial_id, **dict.fromkeys(TRIAL_FIELDS), **start, **(outcome or {})}
            record["traceback"] = None if tb is None else tb.decode(errors="replace")
            record["result_pickle"] = pk
            if beat is not None:
                record["heartbeat"] = self._number(trial_id, "heartbeat", beat)
            if record.pop(CHUNKED, None):
                record["result_pickle"] = self._read_chunks(k.result_chunks(trial_id)) or None
            records.append(record)
        return records

    def _number(self, trial_id: int, field: str, raw: bytes) -> float | None:
        try:
            return float(raw)
        except ValueError:
            self.report_corrupt(trial_id, f"{field} is not a number: {raw[:80]!r}")
            return None

    def _read_chunks(self, key: str) -> bytes:
        chunks: list[bytes] = self._redis().lrange(key, 0, -1)  # type: ignore[assignment]  # raw replies
        return b"".join(chunks)

    @_guarded("loading the history")
    def load_history(self, fields: Sequence[str] = HISTORY_FIELDS) -> dict[str, list[Any]]:
        """Only the start and outcome columns: no tracebacks or pickles are transferred."""
        ids = self._ids(None)
        columns: dict[str, list[Any]] = {field: [] for field in fields}
        if not ids:
            return columns
        starts, outcomes = self._columns(ids, (self.keys.trial_start, self.keys.trial_outcome))
        if None in starts:  # an id without its record (a corrupt one, or the server failed mid-script)
            keep = [i for i, start in enumerate(starts) if start is not None]
            ids, starts, outcomes = ([column[i] for i in keep] for column in (ids, starts, outcomes))
        outcomes = [outcome or {} for outcome in outcomes]  # unfinished trials
        columns["trial_id"] = ids
        for field in (f for f in fields if f != "trial_id"):
            columns[field] = [part.get(field) for part in (starts if field in START_FIELDS else outcomes)]
        return columns

    # ---- metrics ------------------------------------------------------------------
    @_guarded("saving metrics")
    def save_metrics(self, trial_id: int, key: str, epochs: NDArray[Any], values: NDArray[np.float64]) -> None:
        if len(values) == 0:
            return
        k = self.keys
        pipe = self._redis().pipeline(transaction=True)
        pipe.rpush(k.metric(trial_id, key), *encode_metric_chunks(epochs, values))
        pipe.sadd(k.metric_names_of(trial_id), key)
        pipe.sadd(k.metric_names, key)
        pipe.execute()

    @_guarded("loading metrics")
    def load_metrics(self, key: str, trial_ids: Iterable[int]) -> dict[int, MetricSeries]:
        ids = [int(t) for t in trial_ids]
        if not ids:
            return {}
        pipe = self._redis().pipeline(transaction=False)
        for trial_id in ids:
            pipe.lrange(self.keys.metric(trial_id, key), 0, -1)
        return {trial_id: decode_metric_chunks(chunks) for trial_id, chunks in zip(ids, pipe.execute()) if chunks}

    @_guarded("listing metric keys")
    def metric_keys(self, trial_id: int | None = None) -> list[str]:
        name = self.keys.metric_names if trial_id is None else self.keys.metric_names_of(trial_id)
        members = cast("set[bytes]", self._redis().smembers(name))  # raw replies: see _redis
        return sorted(member.decode() for member in members)

    # ---- persisted step results ---------------------------------------------------
    @_guarded("saving a persisted result")
    def save_persisted(self, step: str, trial_id: int, data: bytes) -> None:
        """Small: one string; large: chunks renamed into place. Either way one transaction
        replaces whatever was stored before, so a reader sees the old or the new bytes."""
        small, chunked = self.keys.persisted(step, trial_id), self.keys.persisted_chunks(step, trial_id)
        partial = self._write_partial(data) if len(data) > self.value_chunk_bytes else None
        pipe = self._redis().pipeline(transaction=True)
        if partial is None:
            pipe.set(small, data)
        else:
            pipe.delete(small)
        self._place(pipe, partial, chunked)
        pipe.execute()

    @_guarded("loading a persisted result")
    def load_persisted(self, step: str, trial_id: int) -> bytes | None:
        pipe = self._redis().pipeline(transaction=True)
        pipe.get(self.keys.persisted(step, trial_id))
        pipe.lrange(self.keys.persisted_chunks(step, trial_id), 0, -1)
        small, chunks = pipe.execute()
        return cast("bytes | None", small) if small is not None else (b"".join(chunks) if chunks else None)

    # ---- step cache ---------------------------------------------------------------------
    supports_cache = True

    @_guarded("saving a step-cache entry")
    def save_cached(self, digest: str, data: bytes) -> None:
        pipe = self._redis().pipeline(transaction=True)
        pipe.set(self.keys.cached(digest), data)
        pipe.zadd(self.keys.cache_used, {digest: time.time()})
        pipe.execute()

    @_guarded("loading a step-cache entry")
    def load_cached(self, digest: str) -> bytes | None:
        data = cast("bytes | None", self._redis().get(self.keys.cached(digest)))  # see _redis
        if data is not None:
            self._redis().zadd(self.keys.cache_used, {digest: time.time()}, xx=True)
        return data

    @_guarded("listing the step cache")
    def cached_entries(self) -> list[CacheEntry]:
        used = cast("list[tuple[bytes, float]]",  # raw replies: see _redis
                    self._redis().zrange(self.keys.cache_used, 0, -1, withscores=True))
        pipe = self._redis().pipeline(transaction=False)
        for digest, _ in used:
            pipe.strlen(self.keys.cached(digest.decode()))
        sizes = pipe.execute()
        return [CacheEntry(digest.decode(), int(size), float(score))
                for (digest, score), size in zip(used, sizes) if size]

    @_guarded("deleting step-cache entries")
    def delete_cached(self, digests: Iterable[str]) -> None:
        digests = list(digests)
        if digests:
            pipe = self._redis().pipeline(transaction=True)
            pipe.delete(*(self.keys.cached(d) for d in digests))
            pipe.zrem(self.keys.cache_used, *digests)
            pipe.execute()

    # ---- documents ----------------------------------------------------------------------
    @_guarded("saving a document")
    def save_document(self, kind: str, digest: str, document: Mapping[str, Any]) -> None:
        self._redis().set(self.keys.document(kind, digest), dumps(document), nx=True)

    @_guarded("loading a document")
    def load_document(self, kind: str, digest: str) -> dict[str, Any] | None:
        body = self._redis().get(self.keys.document(kind, digest))
        return None if body is None else json.loads(body)

    # ---- purity ----------------------------------------------------------------------------
    @_guarded("swapping step hashes")
    def swap_step_hashes(self, entries: list[tuple[str, str, str]]) -> list[str | None]:
        if not entries:
            return []
        k = self.keys
        number = {step: i for i, step in enumerate(dict.fromkeys(step for step, _, _ in entries), 1)}
        keys = [k.step_clock, *(name for step in number for name in (k.step_hashes(step), k.step_recency(step)))]
        args: list[Any] = [STEP_HASH_LIMIT]
        for step, input_hash, output_hash in entries:
            args += (number[step], input_hash, output_hash)
        previous = self._script("swap_step_hashes")(keys=keys, args=args)
        return [None if value is None else value.decode() for value in previous]
