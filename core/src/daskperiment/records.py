"""The trial record schema: the one place its fields are spelled out.

This is the ground floor of the package (it imports nothing of daskperiment), so
backends, history, the trial pipeline, the dashboard and third-party backends all
build on the same names. A trial record is a plain dict made of two parts written
at different times:

* :class:`TrialStart`, stored when the trial id is allocated
  (:meth:`daskperiment.Backend.start_trial`);
* :class:`TrialOutcome`, stored once the graph has run
  (:meth:`daskperiment.Backend.finish_trial`).

Every value is plain data (JSON-able) except ``result_pickle``, the only bytes
field, read only when ``result_encoding`` says the result is stored in it (see
:mod:`daskperiment.payloads`). Missing keys read as ``None``: a trial whose
process died has a start and no outcome (the history shows it as abandoned once
its process is known to be gone: see ``heartbeat``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CacheEntry", "HISTORY_FIELDS", "OUTCOME_FIELDS", "SHOWN_FIELDS", "START_FIELDS", "STEP_HASH_LIMIT", "TRIAL_FIELDS",
    "VERBOSE_FIELDS", "JSON_FIELDS", "MetricSeries", "StepHash", "StepRecord", "StepRun", "TrialOutcome", "TrialRecord",
    "TrialStart", "empty_record",
]


class TrialStart(TypedDict, total=False):
    """Written when the trial starts, before any step runs."""

    parameters: dict[str, Any]  #: name → plain-data value, as the trial ran with
    seed: int  #: the seed every seeder got in the driver and before each step
    started: float  #: POSIX timestamp
    code: str | None  #: digest of the ``code`` document (see ``Backend.save_document``)
    environment: str | None  #: digest of the ``environment`` document
    host: str
    pid: int
    sweep: str | None  #: id of the sweep this trial belongs to, ``None`` for a lone trial
    result_step: str | None  #: name of the ``@ex.result`` step whose value is the result
    reproduces: int | None  #: the trial this one re-ran (``ex.reproduce``), else ``None``
    #: Steps this trial shared with other trials of its sweep, comma-separated names (each computed
    #: once, in the first sharing trial: its metrics and purity hashes are recorded there); ``None``
    #: when none. Plain text rather than a list so every backend stores it as a scalar column.
    shared_steps: str | None
    heartbeat: float  #: POSIX timestamp of the last sign of life (``started``, then ``Backend.beat``)


class TrialOutcome(TypedDict, total=False):
    """Written once, when the graph has run (or failed)."""

    finished: float  #: POSIX timestamp
    process_time: float  #: seconds of wall time spent computing the graph
    success: bool
    result: Any  #: the result when plain data, else its (bounded) repr
    result_pickle: bytes | None  #: bytes of a result that is not plain data, in ``result_encoding``
    #: ``"json"`` (the result is ``result``), ``"npy"``, ``"arrow"``, ``"arrow-series"`` or ``"pickle"``
    #: (signed); ``None`` for a failed trial
    result_encoding: str | None
    result_type: str | None  #: ``str(type(result))``
    description: str | None  #: ``"ZeroDivisionError(division by zero)"`` for a failed trial
    traceback: str | None
    steps: dict[str, list[StepRecord]] | None  #: step name → its calls in this trial (on workers too)


class StepRecord(TypedDict, total=False):
    """One call of a step, as kept in :attr:`TrialOutcome.steps`: what reproduction compares."""

    input: str | None  #: hash of the step's name and inputs (``None``: not hashable deterministically)
    output: str | None  #: hash of its output
    seconds: float  #: time spent in the step
    error: str | None  #: ``"ValueError(...)"`` when the call raised
    cache: str | None  #: ``"hit"`` (output loaded from the step cache), ``"miss"`` (computed and stored), or ``None``


class TrialRecord(TrialStart, TrialOutcome, total=False):
    """A whole trial as ``Backend.load_trials`` returns it."""

    trial_id: int


#: Fields of :class:`TrialStart` and :class:`TrialOutcome`, in storage order.
START_FIELDS: tuple[str, ...] = tuple(TrialStart.__annotations__)
OUTCOME_FIELDS: tuple[str, ...] = tuple(TrialOutcome.__annotations__)
TRIAL_FIELDS: tuple[str, ...] = START_FIELDS + OUTCOME_FIELDS

#: Fields holding arbitrary JSON values (the others are scalars: numbers, text, bytes).
JSON_FIELDS: tuple[str, ...] = ("parameters", "result", "steps")

#: The columns ``Backend.load_history`` may be asked for.
HISTORY_FIELDS: tuple[str, ...] = ("trial_id", "parameters", "seed", "finished", "process_time", "success",
                                   "result", "result_type", "description", "sweep")
#: What ``get_history()`` reads; ``get_history(verbose=True)`` reads :data:`VERBOSE_FIELDS`.
SHOWN_FIELDS: tuple[str, ...] = ("trial_id", "parameters", "finished", "process_time", "success", "result",
                                 "description")
VERBOSE_FIELDS: tuple[str, ...] = (*SHOWN_FIELDS, "seed", "result_type", "sweep")

#: How many distinct inputs per step the purity record remembers; the oldest
#: entries are dropped beyond it so the record cannot grow forever.
STEP_HASH_LIMIT = 10_000


def empty_record(trial_id: int) -> dict[str, Any]:
    """A record with every field ``None``: what a backend fills from what it stored."""
    return {"trial_id": trial_id, **dict.fromkeys(TRIAL_FIELDS)}


class StepHash(NamedTuple):
    """One step call's purity entry: the same input hash must give the same output hash."""

    step: str
    input_hash: str
    output_hash: str


class CacheEntry(NamedTuple):
    """One step output in the step cache: its digest, size in bytes and last use (POSIX time)."""

    digest: str
    size: int
    last_used: float


class MetricSeries(NamedTuple):
    """All points of one metric in one trial, in the order they were saved."""

    epochs: NDArray[Any]  #: ``int64`` or ``float64``
    values: NDArray[np.float64]


@dataclass
class StepRun:
    """One finished step call, as passed to the ``step_finished`` hook."""

    name: str
    duration: float  #: seconds spent in the step (bookkeeping included)
    error: BaseException | None = None
    persisted: bool = False
