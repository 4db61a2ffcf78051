"""MongoBackend: one experiment in one MongoDB collection (named by the experiment id).

Every document has a ``category``; the layout is documented in the plugin README.
Why it looks the way it does:

* a trial id is claimed by inserting the trial's document under ``_id`` ``trial:<id>``
  (the next id after the highest one stored): the unique ``_id`` makes concurrent
  processes and hosts take distinct ids, and since the id and its record are one write,
  no id is ever skipped (a counter would be, by a failed write after its ``$inc``). The
  document carries the writer's random token, so a start repeated after a lost connection
  recognises its own document;
* a trial is written as two inserts, its start record and its outcome, never
  updated in place: each write is atomic, and inserts are what every
  MongoDB-compatible server applies faithfully;
* ``_id`` values are fixed before writing (``trial:7``, ``persisted:7:prepare``), so a
  write repeated after a dropped connection (:mod:`.retry`) cannot duplicate anything;
* metric batches and large byte strings are cut into bounded chunk documents
  (:mod:`.chunks`) that become visible only when complete;
* metadata is BSON made safe by :mod:`.codec`, never pickle.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
from daskperiment.backends import Backend
from daskperiment.records import HISTORY_FIELDS, JSON_FIELDS, STEP_HASH_LIMIT, TRIAL_FIELDS, CacheEntry, MetricSeries
from daskperiment.errors import BackendError
from numpy.typing import NDArray

from . import chunks, codec
from .connection import target_from_database, target_from_uri
from .errors import guarded
from .retry import insert, retry

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

logger = logging.getLogger("daskperiment.mongo")

#: What the backend's collection holds (read and written with bson's default codec options).
Document = dict[str, Any]

#: Indexes behind every query of this module (created once per process, idempotently).
INDEXES = (
    (("category", 1), ("trial_id", 1)),  # trials by id, history in id order
    (("category", 1), ("key", 1), ("trial_id", 1), ("seq", 1), ("batch", 1), ("part", 1)),  # metrics
    (("category", 1), ("step", 1), ("seq", 1)),  # purity record: recency per step, pruning
)
#: Fields encoded with :mod:`.codec` (plain data that may hold any key or number).
CODEC_FIELDS = JSON_FIELDS
#: Trial documents per cursor batch (pymongo's default of 101 costs a round trip per 50 trials).
BATCH_DOCUMENTS = 10_000
#: Prune the purity record after this many new entries per process, not on every trial.
PRUNE_EVERY = 64
TIMED_OUT_START = ("Its start timed out (the MongoDB server did not answer in time) and the server stored it "
                   "afterwards: the trial never ran.")


def _key(category: str, *parts: Any) -> str:
    """A deterministic ``_id``; parts are quoted so ``:`` in a step name cannot collide."""
    return ":".join([category, *(quote(str(p), safe="") for p in parts)])


class MongoBackend(Backend):
    """Stores an experiment in the collection ``<experiment id>`` of one MongoDB database.

    :param target: a URI ``mongodb://[user:password@]host[:port]/<database>[?options]`` (or
        ``mongodb+srv://``) that names the database, or a ``pymongo.database.Database``
        (whose client is used in this process and copied into others).
    :param server_selection_timeout_ms: for a URI, how long an operation waits for an
        unreachable server before failing (default 5 s; ``serverSelectionTimeoutMS`` in the
        URI also works). A Database keeps its client's setting.
    """

    scheme = "mongodb"

    def __init__(self, experiment_id: str, target: str | Database[Any], *,
                 server_selection_timeout_ms: int | None = None) -> None:
        super().__init__(experiment_id)
        if isinstance(target, str):
            self._target, self._given = target_from_uri(target, server_selection_timeout_ms), None
        else:
            self._target, self._given = target_from_database(target), target
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._client: Any = None
        self._collection: Collection[Document] | None = None
        self._pid = os.getpid()
        self._indexed = False
        self._unpruned = 0
        self._unconfirmed: list[str] = []  # tokens of trial starts that timed out

    def __getstate__(self) -> dict[str, Any]:
        """Only the recipe travels: clients are per process (not picklable, not fork-safe)."""
        return {"experiment_id": self.experiment_id, "_target": self._target}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._given = None
        self._reset()

    @property
    def uri(self) -> str:
        return self._target.display

    @property
    def server_selection_timeout(self) -> float | None:
        """Seconds an operation waits for an unreachable server (``None`` before connecting)."""
        client = self._client if self._client is not None else getattr(self._given, "client", None)
        return None if client is None else float(client.options.server_selection_timeout)

    # ---- connection ------------------------------------------------------------------
    def _col(self) -> Collection[Document]:
        """This process's collection handle; a forked or unpickled copy connects anew."""
        if self._collection is None or self._pid != os.getpid():
            with self._lock:
                if self._collection is None or self._pid != os.getpid():
                    self._connect()
        assert self._collection is not None
        return self._collection

    def _connect(self) -> None:
        from bson.codec_options import DEFAULT_CODEC_OPTIONS
        from pymongo.write_concern import WriteConcern

        if self._pid != os.getpid():  # inherited through fork: never touch the parent's sockets
            self._client, self._given, self._pid, self._indexed = None, None, os.getpid(), False
        if self._given is not None:
            database = self._given
        else:
            self._client = self._target.connect()
            database = self._client[self._target.database]
        # our own codec and an acknowledged write concern, whatever the user's client uses
        concern = database.write_concern if database.write_concern.acknowledged else WriteConcern()
        self._collection = database.get_collection(self.experiment_id, codec_options=DEFAULT_CODEC_OPTIONS,
                                                   write_concern=concern)
        logger.debug("Connected %r (pid %d)", self, self._pid)

    def _writable(self) -> Collection[Document]:
        """The collection, with its indexes created once per connection (idempotent)."""
        collection = self._col()
        if not self._indexed:
            from pymongo import IndexModel

            retry(lambda: collection.create_indexes([IndexModel(list(fields)) for fields in INDEXES]))
            self._indexed = True
        return collection

    def close(self) -> None:
        """Close the client this backend created (a user's client stays open: it is theirs)."""
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = self._collection = None
            self._indexed = False

    # ---- trials ---------------------------------------------------------------------------
    @guarded("start a trial")
    def start_trial(self, record: Mapping[str, Any]) -> int:
        from pymongo.errors import DuplicateKeyError

        from pymongo.errors import AutoReconnect

        collection = self._writable()
        if self._unconfirmed:
            self._close_timed_out_starts(collection)
        token = uuid.uuid4().hex
        fields = self._encode_fields(record)
        while True:
            trial_id = self._highest_trial_id(collection) + 1
            document = {"_id": _key("trial", trial_id), "category": "trial", "trial_id": trial_id,
                        "token": token, **fields}
            try:
                retry(lambda: collection.insert_one(document))
                return trial_id
            except DuplicateKeyError:  # taken by another writer, or by our own first attempt
                mine = collection.find_one({"_id": document["_id"], "token": token}, {"_id": True})
                if mine is not None:
                    return trial_id
            except AutoReconnect:  # timed out or cut off: the server may still store it
                self._unconfirmed.append(token)  # checked at the next start
                raise

    def _close_timed_out_starts(self, collection: Collection[Document]) -> None:
        """Starts that timed out but were stored by the server afterwards: closed as failed."""
        tokens, self._unconfirmed = self._unconfirmed, []
        for doc in collection.find({"category": "trial", "token": {"$in": tokens}}, {"trial_id": True}):
            logger.warning("Trial %s of experiment %r was recorded after its start had timed out; it is "
                           "marked failed (it never ran).", doc["trial_id"], self.experiment_id)
            self.finish_trial(int(doc["trial_id"]), {"success": False, "finished": time.time(),
                                                     "description": TIMED_OUT_START})

    @staticmethod
    def _highest_trial_id(collection: Collection[Document]) -> int:
        # a foreign document's non-integer trial_id is skipped (servers differ in sorting mixed types)
        for doc in collection.find({"category": "trial", "trial_id": {"$gte": 1}}, {"trial_id": True, "_id": False},
                                   batch_size=2).sort("trial_id", -1):
            if type(doc.get("trial_id")) is int:
                return int(doc["trial_id"])
        return 0

    @guarded("record a heartbeat")
    def beat(self, trial_ids: Sequence[int], timestamp: float) -> None:
        if not trial_ids:
            return
        collection = self._writable()
        ids = [_key("trial", int(t)) for t in trial_ids]
        retry(lambda: collection.update_many({"_id": {"$in": ids}}, {"$set": {"heartbeat": float(timestamp)}}))

    @guarded("store a trial outcome")
    def finish_trial(self, trial_id: int, outcome: Mapping[str, Any]) -> None:
        """Insert an outcome document (one atomic write; the newest one wins).

        Inserting, rather than updating the trial document, keeps every write of a trial an
        insert: MongoDB-compatible servers differ in how faithfully they apply updates (the
        test server nx-27017 turns booleans written by ``$set`` into integers).
        """
        fields = self._encode_fields(outcome)
        pickled = fields.get("result_pickle")
        if pickled is not None and len(pickled) > chunks.CHUNK_BYTES:
            fields["result_pickle"] = None
            fields["result_pickle_blob"] = self._write_blob(pickled)
        seq = chunks.next_seq()
        insert(self._writable(), [{"_id": _key("outcome", int(trial_id), seq), "category": "outcome",
                                   "trial_id": int(trial_id), "seq": seq, **fields}])

    @staticmethod
    def _encode_fields(record: Mapping[str, Any]) -> dict[str, Any]:
        return {field: codec.encode(value) if field in CODEC_FIELDS else value
                for field, value in record.items()}

    def _trial_documents(self, trial_ids: Iterable[int] | None, fields: Iterable[str] | None) -> list[dict[str, Any]]:
        """Trial documents merged with their newest outcome, sorted by id, metadata decoded.

        ``fields`` limits what is read (``None``: everything).
        """
        query: dict[str, Any] = {"category": {"$in": ["trial", "outcome"]}}
        if trial_ids is not None:
            query["trial_id"] = {"$in": [int(t) for t in trial_ids]}
        projection: dict[str, bool] = {"_id": False}
        if fields is not None:
            projection |= dict.fromkeys(("category", "trial_id", "seq", *fields), True)
        starts: dict[int, dict[str, Any]] = {}
        outcomes: dict[int, dict[str, Any]] = {}
        # large batches: fewer round trips (a batch still stops at 16 MB)
        for doc in self._col().find(query, projection, batch_size=BATCH_DOCUMENTS).sort("trial_id", 1):
            trial_id = doc.get("trial_id")
            if type(trial_id) is not int:  # a foreign or damaged document: not a trial of ours
                self.report_corrupt(trial_id, f"a {doc.get('category')} document has no integer trial_id")
                continue
            if doc.pop("category") == "trial":
                starts[trial_id] = doc
            elif not isinstance(doc.get("seq"), int):
                self.report_corrupt(trial_id, "an outcome document has no integer seq")
            elif trial_id not in outcomes or doc["seq"] > outcomes[trial_id]["seq"]:
                outcomes[trial_id] = doc
        records = []
        for trial_id, start in starts.items():
            record = dict.fromkeys(TRIAL_FIELDS) | start | outcomes.get(trial_id, {})
            record.pop("seq", None)
            record.pop("token", None)
            for field in CODEC_FIELDS:
                try:
                    record[field] = codec.decode(record[field])
                except Exception as exc:  # noqa: BLE001 - any damage reads as missing, reported
                    self.report_corrupt(trial_id, f"{field} cannot be decoded ({type(exc).__name__}: {exc})")
                    record[field] = None
            records.append(record)
        return records

    @guarded("read the last trial id")
    def last_trial_id(self) -> int:
        return self._highest_trial_id(self._col())

    @guarded("load trials")
    def load_trials(self, trial_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        records = self._trial_documents(trial_ids, None)
        for record in records:
            blob = record.pop("result_pickle_blob", None)
            if blob is None:
                continue
            if not isinstance(blob, dict) or not isinstance(blob.get("chunks"), int):
                self.report_corrupt(record["trial_id"], f"its result_pickle_blob is not a blob reference: {blob!r:.80}")
                continue
            record["result_pickle"] = self._read_blob(blob, f"the stored result of trial {record['trial_id']}")
        return records

    @guarded("load the history")
    def load_history(self, fields: Sequence[str] = HISTORY_FIELDS) -> dict[str, list[Any]]:
        """Only the history fields are read (no pickles, no tracebacks)."""
        records = self._trial_documents(None, fields)
        return {field: [r.get(field) for r in records] for field in fields}

    # ---- metrics ------------------------------------------------------------------------------
    @guarded("save metrics")
    def save_metrics(self, trial_id: int, key: str, epochs: NDArray[Any], values: NDArray[np.float64]) -> None:
        documents = chunks.metric_documents(trial_id, key, epochs, values)
        if documents:
            insert(self._writable(), documents)

    @guarded("load metrics")
    def load_metrics(self, key: str, trial_ids: Iterable[int]) -> dict[int, MetricSeries]:
        ids = [int(t) for t in trial_ids]
        if not ids:
            return {}
        cursor = self._col().find(
            {"category": "metric", "key": key, "trial_id": {"$in": ids}},
            {"_id": False, "trial_id": True, "batch": True, "part": True, "parts": True,
             "epoch_dtype": True, "value_dtype": True, "epochs": True, "values": True},
        ).sort([("trial_id", 1), ("seq", 1), ("batch", 1), ("part", 1)])
        return chunks.join_metric_documents(cursor)

    @guarded("list metric keys")
    def metric_keys(self, trial_id: int | None = None) -> list[str]:
        query: dict[str, Any] = {"category": "metric"}
        if trial_id is not None:
            query["trial_id"] = int(trial_id)
        collection = self._col()
        if collection.find_one(query, {"_id": True}) is None:  # some servers create a collection on distinct
            return []
        return sorted(collection.distinct("key", query))

    # ---- persisted step results ------------------------------------------------------------------
    @guarded("save a persisted step result")
    def save_persisted(self, step: str, trial_id: int, data: bytes) -> None:
        """Small results live in the document; large ones in chunks written *before* the
        document points at them, so a reader sees the old or the new bytes, never a mix."""
        from pymongo import ReturnDocument

        data = bytes(data)
        fields: dict[str, Any] = {"category": "persisted", "step": step, "trial_id": int(trial_id),
                                  "data": data, "data_blob": None}
        if len(data) > chunks.CHUNK_BYTES:
            fields["data"], fields["data_blob"] = None, self._write_blob(data)
        collection = self._writable()
        before = retry(lambda: collection.find_one_and_update(
            {"_id": _key("persisted", int(trial_id), step)}, {"$set": fields},
            upsert=True, return_document=ReturnDocument.BEFORE))
        if before and before.get("data_blob") and before["data_blob"] != fields["data_blob"]:
            retry(lambda: collection.delete_many({"_id": {"$in": chunks.chunk_ids(before["data_blob"])}}))

    @guarded("load a persisted step result")
    def load_persisted(self, step: str, trial_id: int) -> bytes | None:
        for _ in range(3):  # a concurrent overwrite may delete the chunks just located
            doc = self._col().find_one({"_id": _key("persisted", int(trial_id), step)})
            if doc is None:
                return None
            if doc.get("data_blob") is None:
                inline: bytes = doc["data"]  # stored by save_persisted as BSON binary, read back as bytes
                return inline
            data = self._join_blob(doc["data_blob"])
            if data is not None:
                return data
        raise BackendError(f"{self!r}: the persisted result of step {step!r} in trial {trial_id} "
                           "keeps changing or is incomplete; try again.")

    # ---- step cache -------------------------------------------------------------------------
    supports_cache = True

    @guarded("save a step-cache entry")
    def save_cached(self, digest: str, data: bytes) -> None:
        """Like a persisted result: small outputs in the document, large ones as chunks written first."""
        data = bytes(data)
        fields: dict[str, Any] = {"category": "cache", "digest": digest, "size": len(data), "used": time.time(),
                                  "data": data, "data_blob": None}
        if len(data) > chunks.CHUNK_BYTES:
            fields["data"], fields["data_blob"] = None, self._write_blob(data)
        collection = self._writable()
        retry(lambda: collection.update_one({"_id": _key("cache", digest)}, {"$setOnInsert": fields}, upsert=True))

    @guarded("load a step-cache entry")
    def load_cached(self, digest: str) -> bytes | None:
        doc = self._col().find_one_and_update({"_id": _key("cache", digest)}, {"$set": {"used": time.time()}})
        if doc is None:
            return None
        return doc["data"] if doc.get("data_blob") is None else self._join_blob(doc["data_blob"])

    @guarded("list the step cache")
    def cached_entries(self) -> list[CacheEntry]:
        found = self._col().find({"category": "cache"}, {"digest": True, "size": True, "used": True})
        return [CacheEntry(doc["digest"], int(doc["size"]), float(doc["used"])) for doc in found]

    @guarded("delete step-cache entries")
    def delete_cached(self, digests: Iterable[str]) -> None:
        ids = [_key("cache", digest) for digest in digests]
        if ids:
            collection = self._writable()
            for doc in collection.find({"_id": {"$in": ids}, "data_blob": {"$ne": None}}, {"data_blob": True}):
                collection.delete_many({"_id": {"$in": chunks.chunk_ids(doc["data_blob"])}})
            collection.delete_many({"_id": {"$in": ids}})

    def _write_blob(self, data: bytes) -> dict[str, Any]:
        reference, documents = chunks.blob_documents(data)
        insert(self._writable(), documents)
        return reference

    def _join_blob(self, reference: dict[str, Any]) -> bytes | None:
        found = self._col().find({"_id": {"$in": chunks.chunk_ids(reference)}}, {"n": True, "data": True})
        return chunks.join_blob(reference, found)

    def _read_blob(self, reference: dict[str, Any], what: str) -> bytes:
        data = self._join_blob(reference)
        if data is None:
            raise BackendError(f"{self!r}: {what} is incomplete (chunks of blob {reference['blob']} are missing).")
        return data

    # ---- documents --------------------------------------------------------------------------------
    @guarded("save a document")
    def save_document(self, kind: str, digest: str, document: Mapping[str, Any]) -> None:
        collection = self._writable()
        retry(lambda: collection.update_one(
            {"_id": _key("document", kind, digest)},
            {"$setOnInsert": {"category": "document", "kind": kind, "digest": digest,
                              "body": codec.encode(dict(document))}},
            upsert=True))

    @guarded("load a document")
    def load_document(self, kind: str, digest: str) -> dict[str, Any] | None:
        doc = self._col().find_one({"_id": _key("document", kind, digest)}, {"body": True})
        return None if doc is None else codec.decode(doc["body"])

    # ---- purity -------------------------------------------------------------------------------------
    @guarded("update the step purity record")
    def swap_step_hashes(self, entries: list[tuple[str, str, str]]) -> list[str | None]:
        """Read the previous outputs, then upsert: two round trips per batch. Under concurrent
        trials on one step a swap may miss the other's write; the check only warns, so
        that is traded for speed."""
        from pymongo import UpdateOne

        if not entries:
            return []
        collection = self._writable()
        ids = [_key("step_hash", step, input_hash) for step, input_hash, _ in entries]
        known: dict[str, str | None] = {doc["_id"]: doc["output_hash"] for doc in collection.find(
            {"_id": {"$in": sorted(set(ids))}}, {"output_hash": True})}
        previous: list[str | None] = []
        latest: dict[str, dict[str, Any]] = {}
        for doc_id, (step, input_hash, output_hash) in zip(ids, entries):  # later entries see earlier ones
            previous.append(known.get(doc_id))
            known[doc_id] = output_hash
            latest[doc_id] = {"category": "step_hash", "step": step, "input_hash": input_hash,
                              "output_hash": output_hash, "seq": chunks.next_seq()}
        updates = [UpdateOne({"_id": doc_id}, {"$set": fields}, upsert=True) for doc_id, fields in latest.items()]
        retry(lambda: collection.bulk_write(updates, ordered=False))
        self._unpruned += len(latest)
        if self._unpruned >= PRUNE_EVERY:
            self._unpruned = 0
            for step in {fields["step"] for fields in latest.values()}:
                self._prune_step_hashes(collection, step)
        return previous

    @staticmethod
    def _prune_step_hashes(collection: Collection[Document], step: str) -> None:
        """Drop all but the newest STEP_HASH_LIMIT inputs of ``step``."""
        query = {"category": "step_hash", "step": step}
        newest_dropped = list(collection.find(query, {"seq": True, "_id": False})
                              .sort("seq", -1).skip(STEP_HASH_LIMIT).limit(1))
        if newest_dropped:
            retry(lambda: collection.delete_many({**query, "seq": {"$lte": newest_dropped[0]["seq"]}}))
