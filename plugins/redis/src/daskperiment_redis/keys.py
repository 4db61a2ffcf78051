"""Key names of one experiment in Redis (the layout table in the README).

Every key starts with ``daskperiment:{<experiment id>}:``. The ``daskperiment:``
prefix keeps our keys apart from other applications sharing the database; the
experiment id namespaces experiments from each other. The braces are a Redis
Cluster hash tag: all keys of an experiment map to one slot, so the scripts and
transactions that touch several of them remain valid on a cluster.

Trial records are stored column-wise (one hash per part, field = trial id), so
a history is a handful of ``HMGET`` commands instead of one command per trial.
"""

from __future__ import annotations


class Keys:
    """The key names of experiment ``experiment_id``."""

    __slots__ = (
        "counter",
        "metric_names",
        "prefix",
        "step_clock",
        "cache_used",
        "trial_outcome",
        "trial_pickle",
        "trial_heartbeat",
        "trial_start",
        "trial_traceback",
    )

    def __init__(self, experiment_id: str) -> None:
        p = self.prefix = f"daskperiment:{{{experiment_id}}}:"
        #: string, ``INCR``: the last allocated trial id (ids are 1..counter)
        self.counter = p + "trial_id"
        #: hash, trial id → JSON of the fields written by ``start_trial``
        self.trial_start = p + "trial:start"
        #: hash, trial id → JSON of the outcome fields except traceback and pickle
        self.trial_outcome = p + "trial:outcome"
        #: hash, trial id → traceback text of failed trials (kept out of the history columns)
        self.trial_traceback = p + "trial:traceback"
        #: hash, trial id → ``result_pickle`` bytes of a result that is not plain data (encoded by
        #: ``daskperiment.payloads``), up to the chunk size; larger ones are in :meth:`result_chunks`
        self.trial_pickle = p + "trial:result_pickle"
        #: hash, trial id → POSIX time of the running trial's last heartbeat
        self.trial_heartbeat = p + "trial:heartbeat"
        #: set of metric names saved in any trial
        self.metric_names = p + "metric_keys"
        #: string, ``INCRBY``: recency clock of the purity records
        self.step_clock = p + "step_clock"
        #: sorted set, step-cache digest scored by its last use (POSIX time)
        self.cache_used = p + "stepcache_used"

    def metric(self, trial_id: int, key: str) -> str:
        """List of raw chunks of metric ``key`` in ``trial_id`` (see :mod:`.codec`)."""
        return f"{self.prefix}metric:{int(trial_id)}:{key}"

    def metric_names_of(self, trial_id: int) -> str:
        """Set of metric names saved in ``trial_id``."""
        return f"{self.prefix}metric_keys:{int(trial_id)}"

    def persisted(self, step: str, trial_id: int) -> str:
        """String: the bytes a ``@ex.persist`` step returned (encoded by ``daskperiment.payloads``),
        up to the chunk size; larger ones are in :meth:`persisted_chunks`."""
        return f"{self.prefix}persist:{step}:{int(trial_id)}"

    def cached(self, digest: str) -> str:
        """String: a step's output in the step cache (encoded by ``daskperiment.payloads``), by its digest."""
        return f"{self.prefix}stepcache:{digest}"

    def persisted_chunks(self, step: str, trial_id: int) -> str:
        """List: a persisted result larger than one chunk, in chunks (Redis values stop at 512 MB)."""
        return f"{self.prefix}persist_chunks:{step}:{int(trial_id)}"

    def result_chunks(self, trial_id: int) -> str:
        """List: the ``result_pickle`` bytes of a trial larger than one chunk, in chunks."""
        return f"{self.prefix}result_chunks:{int(trial_id)}"

    def start_token(self, token: str) -> str:
        """String, expiring: the trial id a start with this client token got (idempotent starts)."""
        return f"{self.prefix}start_token:{token}"

    def partial(self, token: str) -> str:
        """List, expiring: chunks being written, renamed into place once complete."""
        return f"{self.prefix}partial:{token}"

    def document(self, kind: str, digest: str) -> str:
        """String: JSON of a content-addressed document (``code`` or ``environment``)."""
        return f"{self.prefix}doc:{kind}:{digest}"

    def step_hashes(self, step: str) -> str:
        """Hash, input hash → output hash of one step (the purity record)."""
        return f"{self.prefix}step_hash:{step}"

    def step_recency(self, step: str) -> str:
        """Sorted set, input hash scored by the clock: which inputs to forget first."""
        return f"{self.prefix}step_recency:{step}"
