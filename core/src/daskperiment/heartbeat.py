"""A running trial's sign of life, so that readers can tell a trial that runs from one whose process died.

A trial started on another host cannot be checked by pid, so while it runs its
record's ``heartbeat`` timestamp is refreshed every :data:`INTERVAL` seconds by
one daemon thread per process (one cheap write per running trial). The history
calls a trial *abandoned* when its process is known to be gone: on the same host
its pid is not alive; elsewhere its heartbeat is older than
:func:`abandoned_after` seconds (``DASKPERIMENT_HEARTBEAT_TIMEOUT``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["INTERVAL", "TIMEOUT_ENV", "abandoned_after", "heartbeats"]

logger = logging.getLogger(__name__)

#: Seconds between two heartbeats of a running trial.
INTERVAL = 10.0
#: Environment variable: seconds without a heartbeat after which a trial of another host is abandoned.
TIMEOUT_ENV = "DASKPERIMENT_HEARTBEAT_TIMEOUT"
DEFAULT_TIMEOUT = 120.0


def abandoned_after() -> float:
    """Seconds without a heartbeat after which a trial started on another host counts as abandoned."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= INTERVAL:
        raise ValueError(f"{TIMEOUT_ENV}={text!r}: give a number of seconds greater than the heartbeat interval "
                         f"({INTERVAL:g} s), e.g. {DEFAULT_TIMEOUT:g}.")
    return value


class _Heartbeats:
    """The process's running trials and the thread that refreshes their heartbeats."""

    def __init__(self) -> None:
        self._trials: dict[tuple[int, int], tuple[Backend, int]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def beating(self, backend: Backend, trial_ids: Sequence[int]) -> _Beating:
        """Refresh the heartbeats of ``trial_ids`` (one trial, or a sweep's) while the ``with`` block runs."""
        return _Beating(self, backend, trial_ids)

    def _add(self, keys: list[tuple[int, int]], backend: Backend) -> None:
        with self._lock:
            for key in keys:
                self._trials[key] = (backend, key[1])
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="daskperiment-heartbeat", daemon=True)
                self._thread.start()

    def _remove(self, keys: list[tuple[int, int]]) -> None:
        with self._lock:
            for key in keys:
                self._trials.pop(key, None)

    def _run(self) -> None:
        while True:
            self._wake.wait(INTERVAL)
            with self._lock:
                trials = list(self._trials.values())
            by_backend: dict[int, tuple[Backend, list[int]]] = {}
            for backend, trial_id in trials:
                by_backend.setdefault(id(backend), (backend, []))[1].append(trial_id)
            now = time.time()
            for backend, trial_ids in by_backend.values():  # one write per backend, however many trials
                try:
                    backend.beat(sorted(trial_ids), now)
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the trial's own writes report errors
                    logger.debug("Heartbeat of trials %s failed: %s", trial_ids[:10], exc)


class _Beating:
    """The ``with`` block of :meth:`_Heartbeats.beating` (a class: it runs on every trial, and a
    generator-based context manager costs several times more)."""

    __slots__ = ("_heartbeats", "_backend", "_keys")

    def __init__(self, heartbeats: _Heartbeats, backend: Backend, trial_ids: Sequence[int]) -> None:
        self._heartbeats = heartbeats
        self._backend = backend
        self._keys = [(id(backend), trial_id) for trial_id in trial_ids]

    def __enter__(self) -> None:
        self._heartbeats._add(self._keys, self._backend)

    def __exit__(self, *exc_info: object) -> None:
        self._heartbeats._remove(self._keys)


heartbeats = _Heartbeats()
