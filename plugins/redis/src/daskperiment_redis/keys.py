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
        #: hash, trial id → raw ``result_pickle`` bytes (only results that are not plain data)
        self.trial_pickle = p + "trial:result_pickle"
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
        """String: the raw (cloudpickle) bytes a ``@ex.persist`` step returned."""
        return f"{self.prefix}persist:{step}:{int(trial_id)}"

    def cached(self, digest: str) -> str:
        """String: a step's pickled output in the step cache, by its digest."""
        return f"{self.prefix}stepcache:{digest}"

    def document(self, kind: str, digest: str) -> str:
        """String: JSON of a content-addressed document (``code`` or ``environment``)."""
        return f"{self.prefix}doc:{kind}:{digest}"

    def step_hashes(self, step: str) -> str:
        """Hash, input hash → output hash of one step (the purity record)."""
        return f"{self.prefix}step_hash:{step}"

    def step_recency(self, step: str) -> str:
        """Sorted set, input hash scored by the clock: which inputs to forget first."""
        return f"{self.prefix}step_recency:{step}"
