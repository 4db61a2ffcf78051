"""The one small interface between daskperiment and its storage.

A backend stores the records of ONE experiment. Everything it receives is plain
data (dicts of JSON-able values, numpy arrays of numbers, or ``bytes`` for
persisted objects) and it must never unpickle anything but persisted step
results. Backends are picklable (Dask ships them to workers) and reconnect
lazily after unpickling. The conformance suite in
:mod:`daskperiment.testing.backend` checks every guarantee written here.

Trial records are dicts whose fields are spelled out once, in
:mod:`daskperiment.records` (:class:`~daskperiment.records.TrialStart` written by
:meth:`Backend.start_trial`, :class:`~daskperiment.records.TrialOutcome` by
:meth:`Backend.finish_trial`); missing keys read as ``None``.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
from typing import Any, ClassVar, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
from numpy.typing import NDArray

from ..errors import BackendError
from ..records import HISTORY_FIELDS, OUTCOME_FIELDS, START_FIELDS, STEP_HASH_LIMIT, CacheEntry, MetricSeries

__all__ = ["Backend", "HISTORY_FIELDS", "STEP_HASH_LIMIT", "MetricSeries", "MetricSummaries"]


class MetricSummaries(NamedTuple):
    """One metric summed up per trial, as columns: what a runs table shows for every trial."""

    trial_ids: NDArray[np.int64]  #: int64, ascending: the trials that saved points of the metric
    last: NDArray[np.float64]  #: float64: each trial's last point saved (NaN if it was NaN)
    low: NDArray[np.float64]  #: float64: the lowest value, NaN ignored (NaN when every value is NaN)
    high: NDArray[np.float64]  #: float64: the highest value, NaN ignored

    @classmethod
    def of(cls, series: Mapping[int, MetricSeries]) -> MetricSummaries:
        """From :meth:`Backend.load_metrics` output (one reduction per trial)."""
        rows = []
        for trial_id in sorted(series):
            values = np.asarray(series[trial_id].values, dtype=float)
            if len(values):
                finite = values[~np.isnan(values)]
                low, high = (finite.min(), finite.max()) if len(finite) else (math.nan, math.nan)
                rows.append((trial_id, values[-1], low, high))
        ids, last, low, high = zip(*rows) if rows else ((), (), (), ())
        return cls(np.array(ids, dtype=np.int64), np.array(last, dtype=float), np.array(low, dtype=float),
                   np.array(high, dtype=float))

logger = logging.getLogger("daskperiment")
_reported: set[tuple[str, str, Any]] = set()  # (backend, experiment, trial id) already reported corrupt
_reported_lock = threading.Lock()


class Backend(abc.ABC):
    """Storage for one experiment.

    Subclasses set :attr:`scheme` and implement the abstract methods. All methods
    must be safe to call from several threads and processes at once.
    """

    scheme: ClassVar[str] = ""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id

    @classmethod
    def from_uri(cls, experiment_id: str, uri: str) -> Backend:
        """Build from a URI string whose scheme was registered for this class."""
        return cls(experiment_id, uri)  # type: ignore[call-arg]

    # ---- identity -------------------------------------------------------
    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """Where the data lives, for display: passwords masked."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    @property
    def identity(self) -> str:
        """What makes two backend objects the same store: ``Experiment(id, backend)`` returns one
        instance per experiment id and identity in a process. The class and the URI by default;
        override when the URI does not tell stores apart (a relative path does not)."""
        return f"{type(self).__module__}.{type(self).__qualname__}:{self.uri}"

    def close(self) -> None:
        """Release connections; the backend reconnects on next use."""

    # ---- reading without disturbing the writer ------------------------------
    def read_only(self) -> Backend:
        """A view of the same storage that never writes, takes no write lock and creates nothing.

        The dashboard and the report read through it, so looking at an experiment can
        never lock, slow or alter the one that is running. The default returns ``self``:
        right for stores whose reads neither lock writers out nor create anything (a
        database server). A backend whose reads could (SQLite files, a directory that
        is created on first use) overrides it; writing through the view is an error.
        """
        return self

    def experiment_ids(self) -> list[str]:
        """Sorted ids of the experiments stored alongside this one (same directory, same database).

        Lets the dashboard index a whole store. The default knows only its own
        experiment, listed when it has trials; a backend that can enumerate overrides it.
        """
        return [self.experiment_id] if self.last_trial_id() else []

    # ---- trials -----------------------------------------------------------
    @abc.abstractmethod
    def start_trial(self, record: Mapping[str, Any]) -> int:
        """Atomically allocate the next trial id (1, 2, …) and store ``record``.

        Concurrent callers (threads, processes, hosts) always get distinct ids.
        """

    def start_trials(self, records: Sequence[Mapping[str, Any]]) -> list[int]:
        """Allocate one id per record and store each record; ids in the order of ``records``.

        A sweep starts all its trials with one call. The default calls :meth:`start_trial`
        for each record (so the ids need not be consecutive when other writers are active);
        override it when the storage can do the batch in one transaction or round trip.
        """
        return [self.start_trial(record) for record in records]

    @abc.abstractmethod
    def finish_trial(self, trial_id: int, outcome: Mapping[str, Any]) -> None:
        """Store the outcome of a started trial (one atomic write)."""

    @abc.abstractmethod
    def last_trial_id(self) -> int:
        """The highest allocated trial id, 0 when there is none."""

    @abc.abstractmethod
    def load_trials(self, trial_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Trial records (each with ``trial_id``) sorted by id; all when ``trial_ids`` is None."""

    def load_history(self, fields: Sequence[str] = HISTORY_FIELDS) -> dict[str, list[Any]]:
        """Column name → values (one per trial, by id) for ``fields`` (a subset of :data:`HISTORY_FIELDS`).

        A columnar view so large histories load fast; override when the storage
        can produce columns more cheaply than :meth:`load_trials`. ``get_history()``
        asks only for what it shows (no ``seed``/``result_type`` unless verbose):
        a backend may return more columns than asked, never fewer.
        """
        records = self.load_trials()
        return {field: [r.get(field) for r in records] for field in fields}

    def import_trial(self, record: Mapping[str, Any]) -> None:
        """Store a whole trial (start and outcome) under its own ``record["trial_id"]``.

        Used to copy experiments between backends (:mod:`daskperiment.transfer`), where
        trial ids must be preserved. Storing a trial whose id is already stored replaces
        its outcome (so an interrupted copy can be resumed). This default allocates the
        id with :meth:`start_trial`, so it accepts only the next id (``last_trial_id() + 1``);
        a backend that can write a given id directly overrides it and also accepts gaps.
        """
        trial_id = int(record["trial_id"])
        last = self.last_trial_id()
        finished = record.get("finished") is not None or record.get("success") is not None
        if trial_id <= last:
            if finished:
                self.finish_trial(trial_id, {f: record.get(f) for f in OUTCOME_FIELDS})
            return
        if trial_id != last + 1:
            raise BackendError(
                f"{self!r} cannot store trial {trial_id} after trial {last}: it allocates ids one by one, so "
                "trials must be imported in order without gaps. Copy into a backend that keeps gaps (sql), or "
                "into an empty experiment.")
        allocated = self.start_trial({f: record.get(f) for f in START_FIELDS})
        if allocated != trial_id:
            raise BackendError(f"{self!r} allocated trial id {allocated} while importing trial {trial_id}: "
                               "another process is writing this experiment. Copy into an experiment nobody "
                               "else writes.")
        if finished:
            self.finish_trial(trial_id, {f: record.get(f) for f in OUTCOME_FIELDS})

    def beat(self, trial_ids: Sequence[int], timestamp: float) -> None:
        """Set the ``heartbeat`` field of running trials' records to ``timestamp``: one cheap write
        for all of them (a sweep beats for thousands of trials at once).

        Called every few seconds while trials run (:mod:`daskperiment.heartbeat`); readers on
        other hosts tell a running trial from an abandoned one by it. The default stores
        nothing, so such trials read as abandoned once the heartbeat timeout has passed:
        every backend should override it (the conformance suite checks it).
        """
        logger.debug("%r keeps no heartbeats (trials %s)", self, list(trial_ids)[:10])

    def report_corrupt(self, trial_id: Any, problem: str) -> None:
        """Log once per process that a stored record cannot be read, naming its trial id.

        Backends and the history call this instead of raising, so one malformed or foreign
        record never makes the rest of the history unreadable.
        """
        key = (repr(self), self.experiment_id, trial_id)
        with _reported_lock:
            if key in _reported:
                return
            _reported.add(key)
        logger.warning("Experiment %r: the record of trial %s in %r cannot be read (%s); it is shown without "
                       "the unreadable part. Fix or delete that record in the store.",
                       self.experiment_id, trial_id, self, problem)

    # ---- metrics ----------------------------------------------------------
    @abc.abstractmethod
    def save_metrics(self, trial_id: int, key: str, epochs: NDArray[Any], values: NDArray[Any]) -> None:
        """Append a batch of points (``int64``/``float64`` epochs, ``int64``/``float64`` values).

        :meth:`load_metrics` must give back the dtypes stored: integer values stay integers.
        """

    @abc.abstractmethod
    def load_metrics(self, key: str, trial_ids: Iterable[int]) -> dict[int, MetricSeries]:
        """Every point of metric ``key`` per trial, in save order; trials without points are absent."""

    @abc.abstractmethod
    def metric_keys(self, trial_id: int | None = None) -> list[str]:
        """Sorted metric names saved in one trial, or in any trial."""

    def metric_summaries(self, key: str, trial_ids: Iterable[int] | None = None) -> MetricSummaries:
        """Metric ``key`` summed up for each trial (all when ``trial_ids`` is None) that saved points.

        The dashboard's runs table shows this for every trial, so it must stay fast for
        100,000 trials: the default goes through :meth:`load_metrics`; a backend that
        can reduce the stored points in bulk overrides it.
        """
        ids = range(1, self.last_trial_id() + 1) if trial_ids is None else trial_ids
        return MetricSummaries.of(self.load_metrics(key, ids))

    # ---- persisted step results ---------------------------------------------
    @abc.abstractmethod
    def save_persisted(self, step: str, trial_id: int, data: bytes) -> None:
        """Store the pickled result of a ``@ex.persist`` step (overwrite allowed)."""

    @abc.abstractmethod
    def load_persisted(self, step: str, trial_id: int) -> bytes | None:
        """The bytes stored by :meth:`save_persisted`, or ``None``."""

    def persisted_sizes(self, trial_id: int, steps: Iterable[str]) -> dict[str, int]:
        """Step name → size in bytes of each result of ``steps`` persisted in ``trial_id``.

        For listing what a trial kept without unpickling it (the dashboard). The
        default reads the bytes; a backend that can ask for a size cheaply overrides it.
        """
        sizes = {}
        for step in steps:
            data = self.load_persisted(step, trial_id)
            if data is not None:
                sizes[step] = len(data)
        return sizes

    # ---- content-addressed documents (code contexts, environments) ---------------
    @abc.abstractmethod
    def save_document(self, kind: str, digest: str, document: Mapping[str, Any]) -> None:
        """Store a JSON-able ``document`` under ``(kind, digest)``; idempotent.

        Trials reference documents by digest, so identical code or environment
        is stored once however many trials use it.
        """

    @abc.abstractmethod
    def load_document(self, kind: str, digest: str) -> dict[str, Any] | None:
        """The document stored under ``(kind, digest)``, or ``None``."""

    def export_code(self, trial_id: int, text: str) -> None:
        """Optionally keep the trial's code as a plain file (the local backend does, for diff tools).

        A sweep calls it from a thread of its own while its trials run.
        """

    # ---- step cache (optional) ------------------------------------------------------
    #: Whether this backend implements the four step-cache methods below; without them
    #: ``cache=True`` steps run every time (with one warning).
    supports_cache: ClassVar[bool] = False

    def save_cached(self, digest: str, data: bytes) -> None:
        """Store a step's encoded output (``daskperiment.payloads``) under its cache ``digest``; idempotent (content-addressed:
        the same digest always means the same output)."""
        raise NotImplementedError(f"{type(self).__name__} does not support the step cache")

    def load_cached(self, digest: str) -> bytes | None:
        """The bytes stored under ``digest`` (or ``None``), and mark the entry used now."""
        raise NotImplementedError(f"{type(self).__name__} does not support the step cache")

    def cached_entries(self) -> list[CacheEntry]:
        """Every cache entry with its size and last use (for least-recently-used eviction)."""
        raise NotImplementedError(f"{type(self).__name__} does not support the step cache")

    def delete_cached(self, digests: Iterable[str]) -> None:
        """Remove cache entries (missing ones are ignored)."""
        raise NotImplementedError(f"{type(self).__name__} does not support the step cache")

    # ---- purity -----------------------------------------------------------
    @abc.abstractmethod
    def swap_step_hashes(self, entries: list[tuple[str, str, str]]) -> list[str | None]:
        """For each ``(step, input_hash, output_hash)``: store it, return the previous output hash.

        Keeps at most :data:`STEP_HASH_LIMIT` inputs per step (oldest dropped).
        """

    def complete_trial(self, trial_id: int, outcome: Mapping[str, Any],
                       step_hashes: list[tuple[str, str, str]]) -> list[str | None]:
        """End of a trial: :meth:`swap_step_hashes` then :meth:`finish_trial`; returns the swap's answer.

        The outcome is stored even when the hashes cannot be. A backend that can do
        both in one round trip or transaction overrides this (it is on every trial's path).
        """
        try:
            return self.swap_step_hashes(step_hashes) if step_hashes else []
        finally:
            self.finish_trial(trial_id, outcome)

    def complete_trials(self, trials: Sequence[tuple[int, Mapping[str, Any], list[tuple[str, str, str]]]]
                        ) -> list[list[str | None]]:
        """:meth:`complete_trial` for each ``(trial_id, outcome, step_hashes)``; each one's swap answer.

        The end of a sweep stores all its outcomes with one call. Hashes are swapped in
        order, so a trial sees the hashes of the trials before it. The default loops;
        override it when the storage can do the batch in one transaction or round trip
        (every outcome must still be stored when the hashes cannot be).
        """
        return [self.complete_trial(trial_id, outcome, hashes) for trial_id, outcome, hashes in trials]
