"""Side records of steps run away from the driver, carried back to it with the tasks' values.

The process that starts a trial (the *driver*) is the only writer of its record. A step
running in another process — a Dask worker of a cluster, a process of the
``processes`` scheduler — records what it would write (metric points, persisted
results, purity hashes, its call record, step-cache entries) into the :class:`Outbox`
of the task running it. The task returns its value wrapped with those records
(:class:`Relayed`); a downstream task unwraps its inputs before running and carries
their records on, so everything recorded for a trial reaches the driver with the
trial's last value, or attached to the exception that ended it. The driver's
:class:`Receiver` writes them: metric points grouped per trial and metric, persisted
results and cache entries as they arrive, purity hashes and call records into the
trial's context (stored with its outcome).

So the default local backend works on a cluster whose workers cannot see or write the
driver's disk, and only the driver talks to a shared server. A record carried along
several paths (a step shared by several trials of a sweep, a diamond in the graph)
is delivered once: every outbox has an id.

Graphs computed in the driver's own process (the threaded and synchronous
schedulers) are not wrapped: their steps record straight into the trial's context.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import dask.local
import dask.threaded
import numpy as np
from dask.task_spec import GraphNode, Task

from .records import StepRecord

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["ERROR_ATTRIBUTE", "Outbox", "Receiver", "Relayed", "TrialSink", "active", "crosses_processes",
           "relayed", "wrap", "wrap_graph"]

logger = logging.getLogger(__name__)

#: The attribute of an exception raised by a relayed task holding the records made before it.
ERROR_ATTRIBUTE = "daskperiment_relayed"


class Outbox:
    """What the steps of one task recorded, for the driver to write (plain data and bytes only)."""

    __slots__ = ("id", "metrics", "persisted", "hashes", "steps", "cached")

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.metrics: list[tuple[int, str, np.ndarray, np.ndarray]] = []  #: trial, key, epochs, values
        self.persisted: list[tuple[int, str, bytes]] = []  #: trial, step, payload
        self.hashes: list[tuple[int, str, str, str, str]] = []  #: trial, step, input, output, the call described
        self.steps: list[tuple[int, str, StepRecord]] = []  #: trial, step, its call record
        self.cached: list[tuple[str, bytes]] = []  #: digest, payload

    def __bool__(self) -> bool:
        return bool(self.metrics or self.persisted or self.hashes or self.steps or self.cached)

    def save_metrics(self, trial_id: int, key: str, epochs: np.ndarray, values: np.ndarray) -> None:
        """Where a relaying trial's :class:`~daskperiment.metrics.MetricBuffer` writes its batches."""
        self.metrics.append((trial_id, key, epochs, values))


@dataclass(frozen=True, eq=False)
class Relayed:
    """A task's value with the side records of its own steps and of the tasks it depends on."""

    value: Any
    records: tuple[Outbox, ...] = field(repr=False)


_active: contextvars.ContextVar[Outbox | None] = contextvars.ContextVar("daskperiment_outbox", default=None)


def active() -> Outbox | None:
    """The outbox of the relayed task running in this thread, or ``None`` outside one."""
    return _active.get()


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _unwrap(value: Any, carried: dict[str, Outbox]) -> Any:
    """``value`` with every :class:`Relayed` in it (also inside the containers Dask fills with
    task values) replaced by its value; the records go to ``carried`` (once per outbox)."""
    kind = type(value)
    if kind is Relayed:
        for box in value.records:
            carried.setdefault(box.id, box)
        return value.value
    if kind not in _CONTAINERS:
        return value
    if kind is dict:
        items = {k: _unwrap(v, carried) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    items_list = [_unwrap(v, carried) for v in value]
    if all(new is old for new, old in zip(items_list, value)):
        return value
    return kind(items_list)


def relayed(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run one task away from the driver: unwrap its inputs, collect what its steps record, and
    return its value with the records (or attach them to the exception it raises)."""
    carried: dict[str, Outbox] = {}
    args = tuple(_unwrap(arg, carried) for arg in args)
    kwargs = {name: _unwrap(arg, carried) for name, arg in kwargs.items()}
    box = Outbox()
    token = _active.set(box)
    try:
        value = func(*args, **kwargs)
    except BaseException as exc:
        records = _records(carried, box)
        if records:
            try:
                setattr(exc, ERROR_ATTRIBUTE, records)
            except AttributeError:  # an exception type without a __dict__: its records are lost with it
                logger.warning("Records of a failed task cannot travel with its %s: they are lost",
                               type(exc).__qualname__)
        raise
    finally:
        _active.reset(token)
    records = _records(carried, box)
    return Relayed(value, records) if records else value


def _records(carried: dict[str, Outbox], box: Outbox) -> tuple[Outbox, ...]:
    boxes = [b for b in carried.values() if b]
    if box:
        boxes.append(box)
    return tuple(boxes)


def wrap(node: GraphNode) -> GraphNode:
    """A graph node run by :func:`relayed` (data nodes and aliases pass values on as they are)."""
    if isinstance(node, Task):
        return Task(node.key, relayed, node.func, *node.args, **node.kwargs)
    return node


def wrap_graph(graph: Mapping[Any, GraphNode]) -> dict[Any, GraphNode]:
    """Every task of ``graph`` run by :func:`relayed`."""
    return {key: wrap(node) for key, node in graph.items()}


def crosses_processes(get: Callable[..., Any]) -> bool:
    """Whether the scheduler function ``get`` (:func:`daskperiment.dask_compat.scheduler_of`) may run
    tasks outside this process.

    Only the threaded and synchronous schedulers certainly run in this process; anything
    else — ``"processes"``, a ``Client``, an executor — is relayed.
    """
    return get is not dask.threaded.get and get is not dask.local.get_sync


class TrialSink(Protocol):
    """Where the driver puts a trial's relayed hashes and call records (a trial's context)."""

    def record_step_hash(self, step: str, input_hash: str, output_hash: str, call: Callable[[], str]) -> None:
        """Keep a purity entry, checked and stored with the trial's outcome."""

    def record_step(self, step: str, record: StepRecord) -> None:
        """Keep a step's call record for the trial's outcome."""

    def write_metrics(self, key: str, epochs: np.ndarray, values: np.ndarray) -> None:
        """Write metric points now, after those the trial buffered in this process."""


class Receiver:
    """The driver's end: writes the records arriving with the values of a run's trials."""

    def __init__(self, backend: Backend, trials: Mapping[int, TrialSink]) -> None:
        self.backend = backend
        self.trials = trials
        self._seen: set[str] = set()

    def take(self, value: Any) -> Any:
        """A task's value as it arrives at the driver: its records written, its plain value returned."""
        if type(value) is not Relayed:
            return value
        self.deliver(value.records)
        return value.value

    def take_error(self, error: BaseException) -> None:
        """Write the records a failed task carried on its exception."""
        records = getattr(error, ERROR_ATTRIBUTE, None)
        if records:
            self.deliver(records)
            delattr(error, ERROR_ATTRIBUTE)

    def deliver(self, records: Iterable[Outbox]) -> None:
        """Write each outbox not delivered before; metric points in one write per trial and metric
        (consecutive batches of one dtype joined)."""
        fresh = [box for box in records if box.id not in self._seen]
        self._seen.update(box.id for box in fresh)
        series: dict[tuple[int, str], list[tuple[np.ndarray, np.ndarray]]] = {}
        for box in fresh:
            for trial_id, key, epochs, values in box.metrics:
                series.setdefault((trial_id, key), []).append((epochs, values))
            for trial_id, step, payload in box.persisted:
                self.backend.save_persisted(step, trial_id, payload)
            for digest, payload in box.cached:
                self.backend.save_cached(digest, payload)
            for trial_id, step, input_hash, output_hash, call in box.hashes:
                self.trials[trial_id].record_step_hash(step, input_hash, output_hash,
                                                       functools.partial(str, call))
            for trial_id, step, record in box.steps:
                self.trials[trial_id].record_step(step, record)
        for (trial_id, key), batches in series.items():
            for epochs, values in _joined(batches):
                self.trials[trial_id].write_metrics(key, epochs, values)


def _joined(batches: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive batches with the same dtypes as one (a batch's dtypes say int or float)."""
    runs: list[list[tuple[np.ndarray, np.ndarray]]] = []
    for epochs, values in batches:
        if runs and (runs[-1][0][0].dtype, runs[-1][0][1].dtype) == (epochs.dtype, values.dtype):
            runs[-1].append((epochs, values))
        else:
            runs.append([(epochs, values)])
    return [run[0] if len(run) == 1 else (np.concatenate([e for e, _ in run]), np.concatenate([v for _, v in run]))
            for run in runs]
