"""Sweeps: many trials of one result computed as ONE Dask graph, each trial still recorded.

``ex.sweep(s, a=[1, 2, 3], b=[0.1, 0.2]).compute(seed=7)`` runs six trials. One
``compute()`` per trial would leave the scheduler idle between trials and pay its
start-up once per trial; one graph lets any scheduler (threads, processes, a
distributed cluster) keep every core busy and share work between trials:

* **Plans first.** Every trial is planned (validated, parameters recorded) before
  any id is allocated, then all ids come in one :meth:`Backend.start_trials` call.
* **Seeds.** Each trial's seed is drawn from the sweep's seed with
  :class:`numpy.random.SeedSequence` and recorded, so any trial re-run alone with
  ``s.with_parameters(**p).compute(seed=recorded)`` gives the same result.
* **Shared tasks.** A task whose inputs are the same in several trials (it depends on
  no parameter that differs between them, and on no impure or persisted step) is one
  task for all of them, under a key made from the sweep and the values it depends
  on. It runs in the context of the first trial using it, and every trial using it
  lists the step in its record's ``shared_steps``. Pure steps must not depend on the
  seed (the purity check already demands that), so sharing them changes no result.
* **Failures stay in their trial.** Every task is wrapped so that an exception
  becomes a :class:`TaskFailure` value passed down to the trial's result instead of
  stopping the whole graph; the trial is recorded as failed and the others go on.
  ``fail_fast=True`` stops at the first failed trial and records those that did not
  finish as cancelled. Every trial of a sweep always ends with an outcome.
"""

from __future__ import annotations

import graphlib
import hashlib
import itertools
import logging
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from dask.callbacks import Callback
from dask.delayed import Delayed
from dask.task_spec import DataNode, GraphNode, Task, TaskRef

from . import relay
from .backends import Backend
from .context import TrialContext
from .dask_compat import as_task_graph, compute_graph, distributed_client, replace_local_result, scheduler_of
from .history import gc_paused, history_frame
from .plugins import PluginHost, get_plugin_host
from .records import SHOWN_FIELDS, TrialOutcome
from .steps import StepSpec, run_step
from .heartbeat import heartbeats
from .trial import (StartedTrial, TrialPlan, TrialPlanner, TrialResult, begin, complete_all, failed, rebind,
                    renamed_key, succeeded)

__all__ = ["Sweep", "SweepPlanner", "TaskFailure", "expand_trials", "trial_seeds"]

logger = logging.getLogger("daskperiment")


class SweepPlanner(TrialPlanner, Protocol):
    """What a :class:`Sweep` needs from its experiment (implemented by ``Experiment``)."""

    def plan_trials(self, result: Delayed, overrides: Sequence[Mapping[str, Any]], seed: int) -> list[TrialPlan]:
        """One validated plan per mapping; raise before any trial id is used."""

    def choose_seed(self, seed: int | None) -> int:
        """The given seed, else the experiment's default, else a generated one."""


# ---- which trials ----------------------------------------------------------------------------
def _choices(name: str, values: Any) -> list[Any]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise TypeError(f"Sweep grid values must be lists of choices: got {name}={values!r}; "
                        f"write {name}=[{values!r}] for a single value.")
    choices = list(values)
    if not choices:
        raise ValueError(f"Sweep grid {name}=[] has no values: the sweep would have no trials.")
    return choices


def expand_trials(trials: Iterable[Mapping[str, Any]] | None, grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Parameter values of every trial: each of ``trials`` combined with each point of ``grid``."""
    if isinstance(trials, Mapping):
        raise TypeError("ex.sweep(result, trials) takes an iterable of parameter dicts, got one dict: "
                        "pass [dict(...)] for one trial, or name=[values …] keywords for a grid.")
    given: list[dict[str, Any]] = [{}]
    if trials is not None:
        given = []
        for i, item in enumerate(trials):
            if not isinstance(item, Mapping):
                raise TypeError(f"Sweep trial #{i} is a {type(item).__qualname__}, not a dict of parameter "
                                f"values: {item!r}")
            given.append(dict(item))
    names = list(grid)
    points = [dict(zip(names, combo)) for combo in itertools.product(*(_choices(n, grid[n]) for n in names))]
    expanded: list[dict[str, Any]] = []
    for values in given:
        both = sorted(set(values) & set(names))
        if both:
            raise ValueError(f"Parameter(s) {', '.join(both)} given both in a trial dict and as a grid keyword.")
        expanded.extend({**values, **point} for point in points)
    if not expanded:
        raise ValueError("The sweep has no trials: give an iterable of parameter dicts or name=[values …].")
    return expanded


def trial_seeds(seed: int, n: int) -> list[int]:
    """``n`` seeds derived from ``seed``: the same list on every machine and numpy version."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)]


# ---- failures as values ------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskFailure:
    """What a task of a sweep returns instead of raising: the failed trial's outcome (plain data).

    Tasks downstream pass it on without running, so it reaches the trial's result.
    """

    outcome: TrialOutcome

    @property
    def description(self) -> str:
        return str(self.outcome.get("description"))


def _failure_in(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TaskFailure | None:
    for value in itertools.chain(args, kwargs.values()):
        if isinstance(value, TaskFailure):
            return value
        if isinstance(value, (list, tuple, set, frozenset, dict)):  # inputs given in a container
            for item in value.values() if isinstance(value, dict) else value:
                if isinstance(item, TaskFailure):
                    return item
    return None


def isolated(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run one task of a sweep: an exception (or a failed input) becomes a :class:`TaskFailure`."""
    failure = _failure_in(args, kwargs)
    if failure is not None:
        return failure
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        return TaskFailure(failed(exc))


def _guarded(node: GraphNode) -> GraphNode:
    if isinstance(node, Task):
        return Task(node.key, isolated, node.func, *node.args, **node.kwargs)
    return node


# ---- one graph for all trials ------------------------------------------------------------------
class _Layout:
    """The result's graph seen from a sweep: what each task depends on and whether it may be shared."""

    def __init__(self, plan: TrialPlan) -> None:
        self.tasks = as_task_graph(plan.graph)
        self.result_key = plan.result_key
        self.placeholder_key = plan.placeholder_key
        parameters = set(plan.bindings)
        self.keys: list[Any] = []  #: the tasks to bind, dependencies first
        self.inputs: dict[Any, tuple[Any, ...]] = {}  #: task → the parameters it depends on, sorted
        self.shareable: set[Any] = set()
        self.step_names: dict[Any, str] = {}
        depends: dict[Any, set[Any]] = {}
        order = graphlib.TopologicalSorter({key: node.dependencies for key, node in self.tasks.items()})
        for key in order.static_order():
            node = self.tasks[key]
            if key in parameters:
                depends[key] = {key}
                continue
            depends[key] = set().union(*(depends[d] for d in node.dependencies)) if node.dependencies else set()
            if key == self.placeholder_key:
                continue
            self.keys.append(key)
            self.inputs[key] = tuple(sorted(depends[key], key=str))
            spec = self._step(node)
            if spec is not None:
                self.step_names[key] = spec.name
            pure = spec is None or (spec.pure and not spec.persist)
            inner = [d for d in node.dependencies if d not in parameters and d != self.placeholder_key]
            if pure and key != self.result_key and all(d in self.shareable for d in inner):
                self.shareable.add(key)
        self.guarded = {key: _guarded(self.tasks[key]) for key in self.keys}  #: wrapped once, bound per trial
        self._relayed: dict[Any, GraphNode] | None = None

    def nodes(self, relaying: bool) -> dict[Any, GraphNode]:
        """The guarded tasks, also relayed (:mod:`daskperiment.relay`) for a scheduler using other processes."""
        if not relaying:
            return self.guarded
        if self._relayed is None:
            self._relayed = relay.wrap_graph(self.guarded)
        return self._relayed

    @staticmethod
    def _step(node: GraphNode) -> StepSpec | None:
        if isinstance(node, Task) and node.func is run_step and node.args and isinstance(node.args[0], StepSpec):
            return node.args[0]
        return None

    def assign(self, plans: Sequence[TrialPlan], token: str) -> tuple[list[dict[Any, Any]], list[tuple[str, ...]]]:
        """Each trial's key for each task (shared keys where trials agree) and its shared steps."""
        signatures = [{key: repr([plan.bindings[p] for p in self.inputs[key]]) for key in self.shareable}
                      for plan in plans]
        counts = Counter((key, signature) for trial in signatures for key, signature in trial.items())
        shared_keys: dict[tuple[Any, str], Any] = {}  #: each shared task's key, made once
        mappings, shared = [], []
        for i, trial in enumerate(signatures):
            mapping: dict[Any, Any] = {}
            names = []
            suffix = f"-{token}-{i}"
            for key in self.keys:
                signature = trial.get(key)
                if signature is not None and counts[key, signature] > 1:
                    new = shared_keys.get((key, signature))
                    if new is None:
                        digest = hashlib.blake2b(signature.encode(), digest_size=8).hexdigest()
                        new = shared_keys[key, signature] = renamed_key(key, f"-{token}-shared-{digest}")
                    mapping[key] = new
                    if key in self.step_names:
                        names.append(self.step_names[key])
                else:
                    mapping[key] = renamed_key(key, suffix)
            mappings.append(mapping)
            shared.append(tuple(dict.fromkeys(names)) if names else ())
        return mappings, shared

    def bind(self, plans: Sequence[TrialPlan], contexts: Sequence[TrialContext],
             mappings: Sequence[dict[Any, Any]], relaying: bool = False) -> dict[Any, GraphNode]:
        """The sweep's graph: per-trial tasks with their values inlined, shared tasks once (bound to the
        first trial using them), every task guarded by :func:`isolated` (and relayed when ``relaying``)."""
        nodes = self.nodes(relaying)
        graph: dict[Any, GraphNode] = {}
        for plan, context, mapping in zip(plans, contexts, mappings):
            inlined = {key: DataNode(None, value) for key, value in plan.bindings.items()}
            inlined[self.placeholder_key] = DataNode(None, context)
            for old, new in mapping.items():
                if new not in graph:
                    graph[new] = rebind(nodes[old], new, inlined, mapping)
        return graph


# ---- running it ------------------------------------------------------------------------------------
class _CodeExport:
    """:meth:`Backend.export_code` for every trial of a sweep, in a thread while the trials run.

    The local backend writes one file (a hard link) per trial; ten thousand of them are
    mostly waiting on the file system, which overlaps with the computation. The first
    trial's is written at once, so an unwritable directory fails the sweep before it runs;
    :meth:`finish` waits for the rest and raises the first error.
    """

    def __init__(self, backend: Backend, trial_ids: Sequence[int], text: str) -> None:
        backend.export_code(trial_ids[0], text)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(backend, trial_ids[1:], text),
                                        name="daskperiment-code-export", daemon=True)
        self._thread.start()

    def _run(self, backend: Backend, trial_ids: Sequence[int], text: str) -> None:
        try:
            for trial_id in trial_ids:
                backend.export_code(trial_id, text)
        except BaseException as exc:  # raised by finish(), in the sweep's thread
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def finish(self) -> None:
        self.wait()
        if self._error is not None:
            raise self._error


class _Stop(Exception):
    """Raised from the scheduler callback to end a fail-fast sweep at its first failed trial."""


class _Results(Callback):
    """Collects each trial's value as its last task finishes (local schedulers run callbacks here)."""

    def __init__(self, finals: Mapping[Any, int], fail_fast: bool, into: dict[int, tuple[Any, float]],
                 receiver: relay.Receiver) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # see mypy.ini: untyped_calls_exclude
        self.finals, self.fail_fast, self.into, self.receiver = finals, fail_fast, into, receiver

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        index = self.finals.get(key)
        if index is None:
            return
        if isinstance(result, relay.Relayed):  # records written now; the scheduler keeps only the value
            result = self.receiver.take(result)
            replace_local_result(state, key, result)
        self.into[index] = (result, time.perf_counter())
        if self.fail_fast and isinstance(result, TaskFailure):
            raise _Stop


def _collect(*_: Any) -> None:
    """The sink task every trial's result feeds (the values are taken as they arrive)."""


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


def _run_local(graph: dict[Any, GraphNode], finals: list[Any], fail_fast: bool, progress: bool,
               dask_kwargs: Mapping[str, Any], into: dict[int, tuple[Any, float]], receiver: relay.Receiver) -> None:
    sink = f"daskperiment-sweep-{uuid.uuid4().hex}"
    graph[sink] = Task(sink, _collect, *(TaskRef(key) for key in finals))
    callbacks: list[Callback] = [_Results({key: i for i, key in enumerate(finals)}, fail_fast, into, receiver)]
    if progress:
        from dask.diagnostics import ProgressBar

        callbacks.append(ProgressBar(out=sys.stderr))
    # Callbacks given to this computation only (Callback.active is process-wide: a sweep in another
    # thread must not see ours); no graph optimisation, which could fuse away the keys we watch
    # (compute_graph runs the graph as it is unless optimize_graph=True is asked for).
    kwargs = {**dask_kwargs, "callbacks": {cb._callback for cb in callbacks}}
    if kwargs.get("optimize_graph") is False:
        del kwargs["optimize_graph"]
    try:
        compute_graph(graph, sink, kwargs)
    except _Stop:
        pass


def _value(future: Any) -> Any:
    """A trial's value from its future; a future that errs (its worker died, its result was lost with
    its worker, it was cancelled) fails that trial only."""
    try:
        return future.result()
    except Exception as exc:
        return TaskFailure(failed(exc))


def _values(client: Any, futures: list[Any]) -> list[Any]:
    """The values of finished futures in one round trip; one by one (:func:`_value`) when one errs."""
    try:
        return list(client.gather(futures))
    except Exception:  # noqa: BLE001 - each future's own error fails its trial only
        return [_value(future) for future in futures]


def _run_distributed(client: Any, graph: dict[Any, GraphNode], finals: list[Any], trial_keys: list[Any],
                     fail_fast: bool, progress: bool, into: dict[int, tuple[Any, float]],
                     receiver: relay.Receiver) -> None:
    """One submission of every trial's graph; results taken as they complete (``as_completed``), their
    records written and each released at once (the cluster keeps no finished trial's value)."""
    from distributed import as_completed

    collections = [Delayed(final, {key: graph[key] for key in keys}) for final, keys in zip(finals, trial_keys)]
    futures = client.compute(collections, optimize_graph=False)
    index = {future.key: i for i, future in enumerate(futures)}
    bar: threading.Thread | None = None
    if progress:  # distributed's bar blocks until every future is done: it draws from its own thread
        from distributed import progress as show

        bar = threading.Thread(target=show, args=(futures,), kwargs={"notebook": False}, daemon=True)
        bar.start()
    pending = set(futures)
    try:
        for batch in as_completed(futures).batches():  # one gather per batch of trials done meanwhile
            for future, value in zip(batch, _values(client, batch)):
                pending.discard(future)
                value = receiver.take(value)
                future.release()
                into[index[future.key]] = (value, time.perf_counter())
                if fail_fast and isinstance(value, TaskFailure):
                    return
    finally:
        for future in pending:
            if future.status == "finished":
                into[index[future.key]] = (receiver.take(_value(future)), time.perf_counter())
        client.cancel([future for future in pending if future.status != "finished"])
        if bar is not None:
            bar.join(timeout=5)  # let it draw 100% and close its stream before the caller's cluster closes


class Sweep:
    """Planned trials of one result, run by :meth:`compute` as one Dask graph.

    Made by :meth:`daskperiment.Experiment.sweep`; every trial's parameters were
    validated then. After :meth:`compute`, :attr:`id` and :attr:`trial_ids` name
    the last run (``get_history(verbose=True)`` shows the id in its ``Sweep`` column).
    """

    def __init__(self, result: TrialResult, trials: Sequence[Mapping[str, Any]]) -> None:
        if not isinstance(result, TrialResult):
            raise TypeError(f"A sweep runs trials of an @ex.result step's value, got {type(result).__qualname__}: "
                            "call the @ex.result step and pass what it returns.")
        base = result.parameters
        planner: SweepPlanner = result.planner  # type: ignore[assignment]
        self._planner = planner
        with gc_paused():  # thousands of plans, none of them cyclic garbage (see history.gc_paused)
            self._trials = [{**base, **values} for values in trials]
            self._plans = planner.plan_trials(result, self._trials, 0)
            self._layout = _Layout(self._plans[0])
        self.id: str | None = None
        self.trial_ids: list[int] = []

    def __len__(self) -> int:
        return len(self._plans)

    def __repr__(self) -> str:
        return f"Sweep({len(self)} trials of {self._layout.result_key!r}, last run: {self.id})"

    @property
    def parameters(self) -> list[dict[str, Any]]:
        """Each trial's parameter values, as recorded (every defined parameter, not only those swept)."""
        return [dict(plan.parameters) for plan in self._plans]

    def compute(self, seed: int | None = None, fail_fast: bool = False, progress: bool | None = None,
                **dask_kwargs: Any) -> pd.DataFrame:
        """Run every trial in one Dask computation; return their rows as ``get_history()`` shows them.

        :param seed: the sweep's seed; trial *i* gets the *i*-th seed drawn from it (recorded).
        :param fail_fast: stop at the first failed trial; the trials that did not finish are
            recorded as cancelled (``Success`` False, ``Description`` ``"Cancelled: …"``).
        :param progress: show a progress bar (default: when stderr is a terminal).
        :param dask_kwargs: passed to :func:`dask.compute` (``scheduler="processes"``,
            ``scheduler=client`` …); a distributed ``Client`` (given, or the default one) runs the
            trials as futures.
        """
        host = get_plugin_host()
        seed = self._planner.choose_seed(seed)
        sweep_id = uuid.uuid4().hex
        # The trials' keys, records, contexts and graph: hundreds of thousands of objects, none of them
        # cyclic garbage, so the collector's passes over them are paused (never while steps run).
        with gc_paused():
            mappings, shared = self._layout.assign(self._plans, sweep_id[:12])
            plans = [plan.running(trial_seed, sweep_id, steps)
                     for plan, trial_seed, steps in zip(self._plans, trial_seeds(seed, len(self._plans)), shared)]
            contexts = begin(plans, host, export_code=False)
            self.id, self.trial_ids = sweep_id, [context.trial_id for context in contexts]
            exporting = _CodeExport(plans[0].backend, self.trial_ids, plans[0].code_text)
            relaying = relay.crosses_processes(scheduler_of(dask_kwargs))
            graph = self._layout.bind(plans, contexts, mappings, relaying)
            trials = [StartedTrial(plan, context.trial_id, context, {}, mapping[self._layout.result_key])
                      for plan, context, mapping in zip(plans, contexts, mappings)]
        self._planner.trial_started(trials[0])  # code and environment are the same for every trial
        uses = Counter(key for mapping in mappings for key in mapping.values())
        logger.info("Started sweep %s: %d trials (ids %d-%d), %d tasks, %d of them shared by several trials",
                    sweep_id, len(trials), self.trial_ids[0], self.trial_ids[-1], len(graph),
                    sum(1 for n in uses.values() if n > 1))
        try:
            with heartbeats.beating(trials[0].plan.backend, self.trial_ids):
                outcomes = self._execute(host, seed, graph, trials, mappings, fail_fast, _show_progress(progress),
                                         dask_kwargs)
        except BaseException:
            exporting.wait()
            raise
        exporting.finish()
        with gc_paused():
            columns: dict[str, list[Any]] = {field: [] for field in SHOWN_FIELDS}
            for trial, outcome in zip(trials, outcomes):
                columns["trial_id"].append(trial.trial_id)
                columns["parameters"].append(trial.plan.parameters)
                for field in SHOWN_FIELDS[2:]:
                    columns[field].append(outcome.get(field))
            return history_frame(columns)

    def _execute(self, host: PluginHost, seed: int, graph: dict[Any, GraphNode], trials: list[StartedTrial],
                 mappings: list[dict[Any, Any]], fail_fast: bool, progress: bool,
                 dask_kwargs: Mapping[str, Any]) -> list[TrialOutcome]:
        """Compute, then record every trial: succeeded, failed, or cancelled (never left unfinished)."""
        finals = [trial.result_key for trial in trials]
        results: dict[int, tuple[Any, float]] = {}
        host.seed_random_state(seed)
        started = time.perf_counter()
        for trial in trials:
            trial.started = started
        reason = "fail_fast stopped the sweep at the first failed trial"
        receiver = relay.Receiver(trials[0].plan.backend, {trial.trial_id: trial.context for trial in trials})
        try:
            client = distributed_client(dask_kwargs.get("scheduler"))
            if client is not None:
                _run_distributed(client, graph, finals, [list(m.values()) for m in mappings], fail_fast, progress,
                                 results, receiver)
            else:
                _run_local(graph, finals, fail_fast, progress, dask_kwargs, results, receiver)
        except BaseException as exc:
            reason = f"the sweep was interrupted by {type(exc).__name__}({exc})"
            raise
        finally:
            with gc_paused():
                outcomes = complete_all(trials, host, [_outcome(results.get(i), started, reason)
                                                       for i in range(len(trials))])
            _summarise(trials, outcomes)
        return outcomes



def _outcome(result: tuple[Any, float] | None, started: float, reason: str) -> TrialOutcome:
    """A trial's outcome from what its last task returned (and when), or cancelled when it never did."""
    if result is None:
        return {"success": False, "description": f"Cancelled: {reason}", "traceback": None, "result_type": None,
                "process_time": time.perf_counter() - started}
    value, finished = result
    if isinstance(value, TaskFailure):
        outcome: TrialOutcome = dict(value.outcome)  # type: ignore[assignment]
    else:
        try:
            outcome = succeeded(value)
        except Exception as exc:  # a result that cannot be stored fails its trial only
            outcome = failed(exc)
    outcome["process_time"] = finished - started
    return outcome


def _summarise(trials: Sequence[StartedTrial], outcomes: Sequence[TrialOutcome]) -> None:
    """One log line for the whole sweep, naming the first failure."""
    failures = [(trial.trial_id, outcome) for trial, outcome in zip(trials, outcomes) if not outcome.get("success")]
    cancelled = sum(1 for _, outcome in failures if str(outcome.get("description")).startswith("Cancelled: "))
    line = f"{len(trials)} trials: {len(trials) - len(failures)} succeeded, {len(failures) - cancelled} failed"
    if cancelled:
        line += f", {cancelled} cancelled"
    first = next(((tid, o) for tid, o in failures if not str(o.get("description")).startswith("Cancelled: ")), None)
    if first is not None:
        line += f" (trial {first[0]}: {first[1].get('description')})"
    logger.log(logging.WARNING if failures else logging.INFO, line)
