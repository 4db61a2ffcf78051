"""A running trial's sign of life, so that readers can tell a trial that runs from one whose process died.

A trial started on another host cannot be checked by pid, so while it runs its
record's ``heartbeat`` timestamp is refreshed every :data:`INTERVAL` seconds by
one daemon thread per process (one cheap write per running trial). The history
calls a trial *abandoned* when its process is known to be gone: on the same host
its pid is not alive; elsewhere its heartbeat is older than
:func:`abandoned_after` seconds (``DASKPERIMENT_HEARTBEAT_TIMEOUT``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
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

    @contextlib.contextmanager
    def beating(self, backend: Backend, trial_ids: Sequence[int]) -> Iterator[None]:
        """Refresh the heartbeats of ``trial_ids`` (one trial, or a sweep's) while the block runs."""
        keys = [(id(backend), trial_id) for trial_id in trial_ids]
        with self._lock:
            self._trials.update({key: (backend, key[1]) for key in keys})
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="daskperiment-heartbeat", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
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


heartbeats = _Heartbeats()
