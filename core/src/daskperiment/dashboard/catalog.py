"""The experiments a dashboard shows, each read through :meth:`Backend.read_only`.

Nothing here writes: an id that names no experiment is reported as unknown, never
created, and a store is scanned again on each index request so experiments started
after the dashboard appear.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from ..backends import Backend
from ..codecontext import join_code
from ..records import TrialRecord
from .runs import RunsFrame, build_runs

__all__ = ["Catalog", "ExperimentData"]

#: While some trial is unfinished, the runs table is rebuilt at most this often.
REFRESH_SECONDS = 2.0


class ExperimentData:
    """One experiment's records, with the runs table cached until the experiment changes."""

    def __init__(self, experiment_id: str, backend: Backend) -> None:
        self.id = experiment_id
        self.backend = backend
        self._runs: RunsFrame | None = None
        self._lock = threading.Lock()

    def runs(self) -> RunsFrame:
        with self._lock:
            runs = self._runs
            if runs is not None and runs.last_trial_id == self.backend.last_trial_id() and (
                    not runs.unfinished or time.monotonic() - runs.built < REFRESH_SECONDS):
                return runs
            self._runs = runs = build_runs(self.backend)
            return runs

    def summary(self) -> dict[str, Any]:
        """Trial count, status counts, last activity and the result range, for the index."""
        columns = self.backend.load_history(("trial_id", "finished", "success", "result"))
        success = columns["success"]
        results = [r for r, s in zip(columns["result"], success)
                   if s and isinstance(r, (int, float)) and not isinstance(r, bool) and r == r]
        finished = [f for f in columns["finished"] if f is not None]
        best: dict[str, Any] = {}
        if results:
            low, high = int(np.argmin(results)), int(np.argmax(results))
            succeeded = [t for t, s, r in zip(columns["trial_id"], success, columns["result"])
                         if s and isinstance(r, (int, float)) and not isinstance(r, bool) and r == r]
            best = {"lowest": results[low], "lowest_trial": succeeded[low],
                    "highest": results[high], "highest_trial": succeeded[high]}
        return {"id": self.id, "trials": len(columns["trial_id"]), "finished": sum(s is True for s in success),
                "failed": sum(s is False for s in success), "unfinished": sum(s is None for s in success),
                "last_activity": max(finished) if finished else None, **best, "backend": self.backend.uri}

    def trial(self, trial_id: int) -> TrialRecord | None:
        records = self.backend.load_trials([trial_id])
        return records[0] if records else None

    def trials(self, trial_ids: list[int]) -> list[TrialRecord]:
        return self.backend.load_trials(trial_ids)

    def code_steps(self, record: TrialRecord) -> dict[str, str]:
        digest = record.get("code")
        document = self.backend.load_document("code", digest) if digest else None
        return dict((document or {}).get("steps") or {})

    def code(self, record: TrialRecord) -> str:
        return join_code(self.code_steps(record))

    def environment(self, record: TrialRecord) -> dict[str, Any]:
        digest = record.get("environment")
        return (self.backend.load_document("environment", digest) if digest else None) or {}


class Catalog:
    """Experiment id → :class:`ExperimentData`: the ones given plus those found alongside.

    :param opener: experiment id → a read-only backend (for experiments found by ``scanner``).
    :param scanner: a read-only backend whose :meth:`Backend.experiment_ids` lists the store.
    """

    def __init__(self, backends: dict[str, Backend], opener: Callable[[str], Backend] | None = None,
                 scanner: Backend | None = None) -> None:
        self._experiments = {i: ExperimentData(i, b) for i, b in backends.items()}
        self._opener = opener
        self._scanner = scanner
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        """Every known id, rescanning the store (cheap: a directory listing or one query)."""
        found = self._scanner.experiment_ids() if self._scanner is not None else []
        return sorted(set(self._experiments) | set(found))

    def get(self, experiment_id: str) -> ExperimentData | None:
        with self._lock:
            if experiment_id in self._experiments:
                return self._experiments[experiment_id]
        if self._opener is None or experiment_id not in self.ids():
            return None
        with self._lock:
            return self._experiments.setdefault(experiment_id,
                                                ExperimentData(experiment_id, self._opener(experiment_id)))
