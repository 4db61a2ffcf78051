"""The running trial, as seen from inside a step.

A :class:`TrialContext` is substituted into the Dask graph when a trial starts,
so it travels with the tasks to threads, processes and distributed workers; the
step wrapper puts it in a :class:`contextvars.ContextVar` while the user's
function runs. No trial state lives in module globals.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import MetricBuffer
from .records import StepRecord
from .relay import Outbox, active

if TYPE_CHECKING:
    from .backends import Backend

logger = logging.getLogger(__name__)

#: ``(step, input hash, output hash, description of the call)`` for the purity check.
PurityEntry = tuple[str, str, str, Callable[[], str]]

current_trial: contextvars.ContextVar[TrialContext | None] = contextvars.ContextVar(
    "daskperiment_current_trial", default=None)


class TrialContext:
    """What a step needs to record into its trial. Picklable; cheap to copy.

    In the process that started the trial (``is_origin``), step purity records and
    call records are collected and written once at trial end. In any other process (a
    Dask worker) a step records through :meth:`relaying`: into the outbox of the task
    running it, which carries everything back to the driver (:mod:`daskperiment.relay`),
    so the driver stays the only writer of the backend.
    """

    __slots__ = ("experiment_id", "trial_id", "backend", "seed", "metrics", "step_hashes", "steps", "is_origin",
                 "outbox")

    def __init__(self, experiment_id: str, trial_id: int, backend: Backend, seed: int) -> None:
        self.experiment_id = experiment_id
        self.trial_id = trial_id
        self.backend = backend
        self.seed = seed
        self.metrics = MetricBuffer(backend, trial_id)
        self.step_hashes: list[PurityEntry] = []
        self.steps: dict[str, list[StepRecord]] = {}
        self.is_origin = True
        self.outbox: Outbox | None = None  #: where a step away from the driver records (see relaying)

    def __getstate__(self) -> tuple[str, int, Backend, int]:
        return (self.experiment_id, self.trial_id, self.backend, self.seed)

    def __setstate__(self, state: tuple[str, int, Backend, int]) -> None:
        self.experiment_id, self.trial_id, self.backend, self.seed = state
        self.metrics = MetricBuffer(self.backend, self.trial_id)
        self.step_hashes = []
        self.steps = {}
        self.is_origin = False
        self.outbox = None

    def __repr__(self) -> str:
        return f"TrialContext({self.experiment_id!r}, trial_id={self.trial_id}, pid={os.getpid()})"

    def relaying(self) -> TrialContext:
        """The context a step running away from the driver records through: a copy writing into
        the outbox of the relayed task running it (:func:`daskperiment.relay.relayed`).

        Without one (a graph some other path shipped to this process), the step keeps writing
        the backend itself, as it must be able to then.
        """
        box = active()
        if self.is_origin or box is None:
            return self
        copy = TrialContext.__new__(TrialContext)
        copy.experiment_id, copy.trial_id, copy.backend, copy.seed = (
            self.experiment_id, self.trial_id, self.backend, self.seed)
        copy.metrics = MetricBuffer(box, self.trial_id)
        copy.step_hashes, copy.steps, copy.is_origin, copy.outbox = [], {}, False, box
        return copy

    def record_step_hash(self, step: str, input_hash: str, output_hash: str, call: Callable[[], str]) -> None:
        """Remember a step's input/output hashes for the purity check.

        ``call`` describes the call's arguments for the warning; in the driver it is only
        called when the check fails (building the description costs more than the check
        itself); a relaying step sends the description along, its arguments stay here.
        """
        if self.is_origin:
            self.step_hashes.append((step, input_hash, output_hash, call))
        elif self.outbox is not None:
            self.outbox.hashes.append((self.trial_id, step, input_hash, output_hash, call()))
        else:
            check_purity(self.backend, [(step, input_hash, output_hash, call)])

    def record_step(self, step: str, record: StepRecord) -> None:
        """Keep one call of ``step`` for the trial's outcome (``TrialOutcome.steps``).

        Calls away from the driver reach the outcome through the outbox; without one (see
        :meth:`relaying`) what a copy of this context records in another process stays there.
        """
        if self.is_origin:
            self.steps.setdefault(step, []).append(record)
        elif self.outbox is not None:
            self.outbox.steps.append((self.trial_id, step, record))

    def write_metrics(self, key: str, epochs: np.ndarray, values: np.ndarray) -> None:
        """Write points now, after those buffered so far (how the driver writes relayed points)."""
        self.metrics.write(key, epochs, values)

    def save_persisted(self, step: str, payload: bytes) -> None:
        """Store a ``@ex.persist`` step's encoded output (through the outbox when relaying)."""
        if self.outbox is not None:
            self.outbox.persisted.append((self.trial_id, step, payload))
        else:
            self.backend.save_persisted(step, self.trial_id, payload)

    def save_cached(self, digest: str, payload: bytes) -> None:
        """Store a step-cache entry (through the outbox when relaying: the driver writes it)."""
        if self.outbox is not None:
            self.outbox.cached.append((digest, payload))
        else:
            self.backend.save_cached(digest, payload)


def check_purity(backend: Backend, entries: list[PurityEntry]) -> None:
    """Store step hashes and warn where the same input gave a different output."""
    if entries:
        warn_impure(entries, backend.swap_step_hashes([entry[:3] for entry in entries]))


def warn_impure(entries: list[PurityEntry], previous: list[str | None]) -> None:
    """Warn for each step whose output hash differs from the one stored for the same input."""
    for (step, _, output_hash, call), before in zip(entries, previous):
        if before is not None and before != output_hash:
            logger.warning("Experiment step result is changed with the same input: (step: %s, %s)", step, call())


def get_current(experiment_id: str) -> TrialContext | None:
    ctx = current_trial.get()
    if ctx is not None and ctx.experiment_id == experiment_id:
        return ctx
    return None


def require_current(experiment_id: str, what: str) -> TrialContext:
    from .errors import TrialIDNotFoundError

    ctx = get_current(experiment_id)
    if ctx is None:
        raise TrialIDNotFoundError(
            f"{what} only exists during a trial execution: call it inside a step of experiment "
            f"{experiment_id!r} (a function decorated with @ex, @ex.result or @ex.persist).")
    return ctx


def describe_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = 80
    return f"args: {r.repr(tuple(args))}, kwargs: {r.repr(dict(kwargs))}"
