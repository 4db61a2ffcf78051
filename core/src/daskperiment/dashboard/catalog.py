"""The experiments a dashboard shows, each read through :meth:`Backend.read_only`.

Nothing here writes: an id that names no experiment is reported as unknown, never
created, and a store is scanned again on each index request so experiments started
after the dashboard appear.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any, Callable, Mapping

from ..backends import Backend
from ..codecontext import join_code
from .runs import RunsFrame, build_runs

__all__ = ["Catalog", "ExperimentData"]

#: While some trial is unfinished, the runs table is rebuilt at most this often.
REFRESH_SECONDS = 2.0
#: From this many trials the runs table is built in the background (about 0.1 s per 10,000 trials).
PARTIAL_FROM = 20_000
#: Rows answered from the newest trials while the whole table is built.
FIRST_PAGE = 100


def _done(runs: RunsFrame) -> Future[RunsFrame]:
    future: Future[RunsFrame] = Future()
    future.set_result(runs)
    return future


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ExperimentData:
    """One experiment's records, with the runs table cached until the experiment changes.

    A large table (:data:`PARTIAL_FROM` trials or more) is built in a background thread;
    meanwhile the first page is answered from the newest trials alone (or from the previous
    table), so the page paints at once and refreshes when the whole table is ready.
    """

    def __init__(self, experiment_id: str, backend: Backend) -> None:
        self.id = experiment_id
        self.backend = backend
        self._runs: RunsFrame | None = None
        self._partial: RunsFrame | None = None
        self._building: Future[RunsFrame] | None = None
        self._lock = threading.Lock()

    def _fresh(self, runs: RunsFrame | None, last_trial_id: int) -> bool:
        return runs is not None and runs.last_trial_id == last_trial_id and (
            not runs.unfinished or time.monotonic() - runs.built < REFRESH_SECONDS)

    def runs_future(self, first_page: bool = False) -> Future[RunsFrame]:
        """The whole, current table; with ``first_page``, whatever answers the newest trials now."""
        last_trial_id = self.backend.last_trial_id()
        with self._lock:
            if self._runs is not None and self._fresh(self._runs, last_trial_id):
                return _done(self._runs)
            if last_trial_id < PARTIAL_FROM:
                self._runs = build_runs(self.backend)
                return _done(self._runs)
            if first_page and self._runs is None and (
                    self._partial is None or self._partial.last_trial_id != last_trial_id):
                # before the background build starts: it would compete for the interpreter
                newest = list(range(max(1, last_trial_id - FIRST_PAGE + 1), last_trial_id + 1))
                self._partial = build_runs(self.backend, newest)
            building = self._building
            if building is None or building.done():
                building = self._building = Future()
                threading.Thread(target=self._build, args=(building,), name=f"daskperiment-runs-{self.id}",
                                 daemon=True).start()
            if not first_page:
                return building
            if self._runs is not None:  # the previous table, while the new one is built
                return _done(dataclasses.replace(self._runs, complete=False, views=OrderedDict()))
            assert self._partial is not None
            return _done(self._partial)

    def _build(self, future: Future[RunsFrame]) -> None:
        try:
            runs = build_runs(self.backend)
        except Exception as exc:  # handed to whoever waits on the future
            future.set_exception(exc)
            return
        with self._lock:
            self._runs, self._partial = runs, None
        future.set_result(runs)

    def runs(self) -> RunsFrame:
        """The whole, current table (waits for a build in progress)."""
        return self.runs_future().result()

    def summary(self) -> dict[str, Any]:
        """Trial count, status counts, last activity and the result range, for the index."""
        columns = self.backend.load_history(("trial_id", "finished", "success", "result"))
        success = columns["success"]
        scored = [(r, t) for t, s, r in zip(columns["trial_id"], success, columns["result"]) if s and _number(r)]
        finished = [f for f in columns["finished"] if f is not None]
        best: dict[str, Any] = {}
        if scored:
            (lowest, low_trial), (highest, high_trial) = min(scored), max(scored)
            best = {"lowest": lowest, "lowest_trial": low_trial, "highest": highest, "highest_trial": high_trial}
        return {"id": self.id, "trials": len(columns["trial_id"]), "finished": sum(s is True for s in success),
                "failed": sum(s is False for s in success), "unfinished": sum(s is None for s in success),
                "last_activity": max(finished) if finished else None, **best, "backend": self.backend.uri}

    def trial(self, trial_id: int) -> dict[str, Any] | None:
        records = self.backend.load_trials([trial_id])
        return records[0] if records else None

    def trials(self, trial_ids: list[int]) -> list[dict[str, Any]]:
        return self.backend.load_trials(trial_ids)

    def code_steps(self, record: Mapping[str, Any]) -> dict[str, str]:
        digest = record.get("code")
        document = self.backend.load_document("code", digest) if digest else None
        return dict((document or {}).get("steps") or {})

    def code(self, record: Mapping[str, Any]) -> str:
        return join_code(self.code_steps(record))

    def environment(self, record: Mapping[str, Any]) -> dict[str, Any]:
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
