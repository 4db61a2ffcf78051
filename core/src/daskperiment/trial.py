"""One trial as a value: *plan* → *start* → *execute* → *complete*.

A :class:`TrialPlan` holds everything a trial needs, fixed before its id is
allocated: the graph, the parameter values bound into it, the seed, the code and
environment digests and the backend. The functions below take the plan (and the
plugin host), never the :class:`~daskperiment.Experiment`: two threads sharing an
Experiment run two plans and can never see each other's values, and a sweep can
run many plans in one graph.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dask.delayed import Delayed
from dask.task_spec import DataNode, GraphNode, Task, TaskRef

from . import relay
from .backends import Backend
from .context import TrialContext, warn_impure
from .dask_compat import as_task_graph, compute_graph, scheduler_of
from .errors import BackendUnavailableError
from .plugins import PluginHost, get_plugin_host
from .errors import UntrackedComputeError
from .records import TrialOutcome, TrialStart
from .heartbeat import heartbeats
from .payloads import encode_result

__all__ = ["StartedTrial", "TrialPlan", "TrialPlanner", "TrialResult", "begin", "bind_graph", "complete",
           "complete_all", "execute", "failed", "generate_seed", "rebind", "renamed_key", "run", "start", "succeeded"]

logger = logging.getLogger("daskperiment")

#: The largest seed: every seeder takes it (numpy's legacy seeding stops at 2**32 - 1).
MAX_SEED = 2**32 - 1
#: Seconds a trial that failed because its backend is unreachable waits for its outcome to be
#: stored before raising (the write goes on in the background): the user hears of a dead
#: server after one timeout, not two.
UNREACHABLE_OUTCOME_WAIT = 0.5


@dataclass(frozen=True)
class TrialPlan:
    """Everything one trial needs, decided before its id is allocated."""

    experiment_id: str
    backend: Backend
    graph: Mapping[Any, Any]  #: the result's graph, parameters and trial context still unbound
    result_key: Any
    bindings: Mapping[Any, Any]  #: graph key → value of each parameter the graph uses
    placeholder_key: Any  #: the graph key the running trial's context replaces
    parameters: dict[str, Any]  #: every defined parameter, as recorded (plain data)
    seed: int
    code_digest: str
    code_text: str
    environment_digest: str
    result_step: str | None = None  #: name of the result step (what ``ex.reproduce`` re-runs)
    sweep: str | None = None  #: id of the sweep running this trial with others in one graph
    reproduces: int | None = None
    shared_steps: tuple[str, ...] = ()  #: steps computed once for this trial and others of its sweep

    def running(self, seed: int, sweep: str, shared_steps: tuple[str, ...]) -> TrialPlan:
        """This plan as one trial of sweep ``sweep`` with its own seed: ``dataclasses.replace``
        without re-running ``__init__`` (a sweep makes thousands)."""
        plan = object.__new__(TrialPlan)
        plan.__dict__.update(self.__dict__, seed=seed, sweep=sweep, shared_steps=shared_steps)
        return plan

    def start_record(self) -> TrialStart:
        now = time.time()
        return {"parameters": self.parameters, "seed": self.seed, "started": now,
                "code": self.code_digest, "environment": self.environment_digest,
                "host": socket.gethostname(), "pid": os.getpid(), "sweep": self.sweep,
                "result_step": self.result_step, "reproduces": self.reproduces,
                "shared_steps": ",".join(self.shared_steps) or None, "heartbeat": now}


@dataclass
class StartedTrial:
    """A planned trial with its id: what execution and completion need."""

    plan: TrialPlan
    trial_id: int
    context: TrialContext
    graph: dict[Any, Any] = field(repr=False)  #: bound graph under per-trial keys
    result_key: Any
    started: float = field(default_factory=time.perf_counter)


class TrialPlanner(Protocol):
    """What a :class:`TrialResult` needs from its experiment (implemented by ``Experiment``)."""

    def plan(self, result: Delayed, overrides: Mapping[str, Any], seed: int | None) -> TrialPlan:
        """Validate and fix everything for one trial; raise before any trial id is used."""

    def trial_started(self, trial: StartedTrial) -> None:
        """Called once the id is allocated (the experiment warns about code changes)."""


class TrialResult(Delayed):
    """The Delayed returned by an ``@ex.result`` step: ``compute()`` runs a recorded trial."""

    __slots__ = ("_planner", "_overrides", "step")
    # set with object.__setattr__ (Delayed forbids attribute assignment); declared for type checkers
    _planner: TrialPlanner
    _overrides: dict[str, Any]
    step: str

    def __init__(self, key: Any, dsk: Any, *, planner: TrialPlanner, step: str,
                 overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(key, dsk)  # type: ignore[no-untyped-call]  # see mypy.ini: untyped_calls_exclude
        object.__setattr__(self, "_planner", planner)
        object.__setattr__(self, "_overrides", dict(overrides or {}))
        object.__setattr__(self, "step", step)  #: the name of the result step

    def compute(self, seed: int | None = None, **kwargs: Any) -> Any:
        """Run one trial and return its result; ``kwargs`` as :func:`dask.compute` takes them (``scheduler=``, …)."""
        planner: TrialPlanner = self._planner
        return run(planner.plan(self, self._overrides, seed), dask_kwargs=kwargs,
                   on_started=planner.trial_started)

    def with_parameters(self, **values: Any) -> TrialResult:
        """The same result with these parameter values for its trials only.

        ``s.with_parameters(a=1).compute()`` runs a trial with ``a=1`` without touching
        the experiment's shared values, so threads sharing one experiment never mix
        their values; parameters not named keep the experiment's current values.
        """
        return TrialResult(self.key, self.dask, planner=self._planner, step=self.step,
                           overrides={**self._overrides, **values})

    @property
    def planner(self) -> TrialPlanner:
        """The experiment planning this result's trials."""
        return self._planner

    @property
    def parameters(self) -> dict[str, Any]:
        """The values given with :meth:`with_parameters` (the others come from the experiment)."""
        return dict(self._overrides)

    def __dask_postcompute__(self) -> Any:
        """Refuse ``dask.compute(s)``, ``s.persist()`` and ``client.compute(s)``.

        Dask asks every collection for this before running it, and these paths know
        nothing of trials: they would compute the result without recording a trial
        (and ``save_metric`` would fail in the steps). ``s.compute()`` and sweeps run
        the graph themselves under other keys, so they never come here.
        """
        raise UntrackedComputeError(
            f"The trial result {self.key!r} cannot be computed by dask.compute(), .persist() or "
            "Client.compute(): that would run it without recording a trial. Use s.compute(seed=..., "
            "scheduler=...) for one recorded trial, or ex.sweep(s, ...).compute(scheduler=...) to run "
            "many trials as one Dask graph.")

    def __reduce__(self) -> tuple[Any, ...]:  # a plain Delayed when shipped elsewhere
        return (Delayed, (self.key, self.dask))


#: Suffixes of bound graphs' keys: unique across processes (a random token per process) and
#: within one (a counter), without a ``uuid4`` per trial.
_PROCESS_TOKEN = secrets.token_hex(4)
_bound = itertools.count()


def _new_process_token() -> None:
    global _PROCESS_TOKEN
    _PROCESS_TOKEN = secrets.token_hex(4)  # a forked child must not repeat its parent's keys


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_process_token)


def renamed_key(key: Any, suffix: str) -> Any:
    return (f"{key[0]}{suffix}", *key[1:]) if isinstance(key, tuple) else f"{key}{suffix}"


def bind_graph(graph: Mapping[Any, Any], values: Mapping[Any, Any],
               suffix: str) -> tuple[dict[Any, GraphNode], dict[Any, Any]]:
    """The graph of one trial: ``values`` inlined, every other task under a per-trial key.

    Parameter values and the trial context are inlined into the tasks that use them
    rather than kept as graph nodes: each node costs the scheduler as much as a task.
    Fresh keys matter on a distributed scheduler, which would otherwise reuse a key's
    stale result from the previous trial.
    """
    tasks = as_task_graph(graph)
    renames = {key: renamed_key(key, suffix) for key in tasks if key not in values}
    inlined = {key: DataNode(None, value) for key, value in values.items() if key in tasks}
    return {new: rebind(tasks[old], new, inlined, renames) for old, new in renames.items()}, renames


def rebind(node: GraphNode, key: Any, inlined: Mapping[Any, DataNode], renames: Mapping[Any, Any]) -> GraphNode:
    """``node`` under ``key``, its references to ``inlined`` keys replaced by their nodes and the others
    renamed by ``renames``: what ``node.substitute({**inlined, **renames}, key=key)`` gives.

    A task whose arguments are references or constants (every step call: a sweep binds
    thousands) is rebuilt here directly, several times faster than Dask's general
    substitution, which walks nested arguments and compares every substitution; any other
    node is left to it.
    """
    if type(node) is Task:
        args = _rebound(node.args, inlined, renames)
        kwargs = _rebound(tuple(node.kwargs.values()), inlined, renames)
        if args is not None and kwargs is not None:
            return Task(key, node.func, *args, _data_producer=node.data_producer,
                        **dict(zip(node.kwargs, kwargs)))
    return node.substitute({**inlined, **renames}, key=key)


def _rebound(args: tuple[Any, ...], inlined: Mapping[Any, DataNode], renames: Mapping[Any, Any]
             ) -> list[Any] | None:
    """``args`` with each reference substituted, or ``None`` when one is a nested node (a list of
    Delayed, say) that only Dask's substitution handles."""
    out: list[Any] = []
    for arg in args:
        if isinstance(arg, TaskRef):
            ref = arg.key
            node = inlined.get(ref)
            if node is not None:
                out.append(node)
            elif ref in renames:
                out.append(TaskRef(renames[ref]))
            else:
                out.append(arg)  # not ours (a distributed Future, say): kept as it is
        elif isinstance(arg, GraphNode) and arg.dependencies:
            return None
        else:
            out.append(arg)
    return out


def begin(plans: Sequence[TrialPlan], host: PluginHost, *, export_code: bool = True) -> list[TrialContext]:
    """Allocate the ids of ``plans`` (one backend call), store their start records, tell the plugins.

    Every plan must use the same backend (the trials of one experiment). Returns each
    trial's context, in the order of ``plans``. ``export_code=False`` leaves
    :meth:`Backend.export_code` to the caller (a sweep calls it while its trials run).
    """
    if not plans:
        return []
    backend = plans[0].backend
    if len(plans) == 1:  # one statement, where a batch needs a transaction
        trial_ids = [backend.start_trial(plans[0].start_record())]
    else:
        trial_ids = backend.start_trials([plan.start_record() for plan in plans])
    contexts = []
    for plan, trial_id in zip(plans, trial_ids):
        host.trial_started(experiment_id=plan.experiment_id, trial_id=trial_id, parameters=plan.parameters,
                           seed=plan.seed)
        if export_code:
            backend.export_code(trial_id, plan.code_text)
        contexts.append(TrialContext(plan.experiment_id, trial_id, backend, plan.seed))
    return contexts


def start(plan: TrialPlan, host: PluginHost) -> StartedTrial:
    """Allocate the trial id, store the start record, and bind the graph to this trial."""
    (context,) = begin([plan], host)
    trial_id = context.trial_id
    logger.info("Started Experiment (trial id=%d)", trial_id)
    values = {**plan.bindings, plan.placeholder_key: context}
    graph, keys = bind_graph(plan.graph, values, f"-trial{trial_id}-{_PROCESS_TOKEN}{next(_bound)}")
    return StartedTrial(plan, trial_id, context, graph, keys[plan.result_key])


def execute(trial: StartedTrial, host: PluginHost, dask_kwargs: Mapping[str, Any]) -> Any:
    """Seed the driver and compute the trial's graph on any Dask scheduler (see :func:`compute_graph`).

    On a scheduler that may run steps in other processes, the graph's tasks are relayed:
    what the steps record comes back with the value (or the error) and is written here.
    """
    host.seed_random_state(trial.plan.seed)
    trial.started = time.perf_counter()
    get = scheduler_of(dask_kwargs)
    if not relay.crosses_processes(get):
        return compute_graph(trial.graph, trial.result_key, dask_kwargs, get)
    receiver = relay.Receiver(trial.plan.backend, {trial.trial_id: trial.context})
    try:
        value = compute_graph(relay.wrap_graph(trial.graph), trial.result_key, dask_kwargs, get)
    except BaseException as exc:
        receiver.take_error(exc)
        raise
    return receiver.take(value)


def succeeded(value: Any) -> TrialOutcome:
    outcome: TrialOutcome = {**encode_result(value), "success": True}
    return outcome


def failed(exc: BaseException) -> TrialOutcome:
    return {"success": False, "description": f"{type(exc).__name__}({exc})",
            "traceback": "".join(traceback.format_exception(exc)), "result_type": None, "result_encoding": None}


def complete(trial: StartedTrial, host: PluginHost, outcome: TrialOutcome,
             error: BaseException | None = None) -> TrialOutcome:
    """Flush what the steps left behind, then store the outcome (even if flushing failed)."""
    if isinstance(error, BackendUnavailableError):
        return _complete_unreachable(trial, host, outcome)
    return complete_all([trial], host, [outcome])[0]


def complete_all(trials: Sequence[StartedTrial], host: PluginHost,
                 outcomes: Sequence[TrialOutcome]) -> list[TrialOutcome]:
    """:func:`complete` for many trials of one backend, stored with one backend call (a sweep's end).

    Every outcome is stored even when flushing a trial's metrics failed; the first
    flushing error is raised afterwards.
    """
    error: BaseException | None = None
    for trial, outcome in zip(trials, outcomes):
        outcome.setdefault("process_time", time.perf_counter() - trial.started)  # a sweep measures its own
        try:
            trial.context.metrics.flush()
        except BaseException as exc:
            error = error or exc
        outcome["finished"] = time.time()
        outcome["steps"] = trial.context.steps
    if trials:
        answers = trials[0].plan.backend.complete_trials(
            [(trial.trial_id, outcome, [entry[:3] for entry in trial.context.step_hashes])
             for trial, outcome in zip(trials, outcomes)])
        for trial, outcome, previous in zip(trials, outcomes, answers):
            warn_impure(trial.context.step_hashes, previous)
            host.trial_finished(experiment_id=trial.plan.experiment_id, trial_id=trial.trial_id, record=outcome)
    if error is not None:
        raise error
    return list(outcomes)


def _complete_unreachable(trial: StartedTrial, host: PluginHost, outcome: TrialOutcome) -> TrialOutcome:
    """Complete a trial that failed because the backend is unreachable, waiting at most
    :data:`UNREACHABLE_OUTCOME_WAIT`: a server that is back stores the outcome at once; a dead
    one would make the user wait a full timeout again. The write carries on in a daemon thread
    (if the process ends first, the history shows the trial as abandoned)."""
    done = threading.Event()

    def store() -> None:
        try:
            complete_all([trial], host, [outcome])
        except Exception as exc:  # noqa: BLE001 - the trial already raises the backend's error
            logger.warning("Completing trial %d in the background: %s", trial.trial_id, exc)
        finally:
            done.set()

    threading.Thread(target=store, name=f"daskperiment-outcome-{trial.trial_id}", daemon=True).start()
    if not done.wait(UNREACHABLE_OUTCOME_WAIT):
        logger.warning("Trial %d failed because its backend is unreachable; its outcome is still being stored "
                       "in the background.", trial.trial_id)
    return outcome


def run(plan: TrialPlan, *, dask_kwargs: Mapping[str, Any],
        on_started: Callable[[StartedTrial], None] | None = None) -> Any:
    """Start, execute and complete one trial; return its result or re-raise its error."""
    host = get_plugin_host()
    trial = start(plan, host)
    with heartbeats.beating(plan.backend, [trial.trial_id]):
        if on_started is not None:
            on_started(trial)
        try:
            value = execute(trial, host, dask_kwargs)
        except BaseException as exc:
            outcome = complete(trial, host, failed(exc), exc)
            logger.error("Failed Experiment (trial id=%d): %s", trial.trial_id, outcome["description"])
            raise
        complete(trial, host, succeeded(value))
    logger.info("Finished Experiment (trial id=%d)", trial.trial_id)
    return value


def generate_seed() -> int:
    """A fresh seed every seeder accepts (1 … :data:`MAX_SEED`)."""
    return secrets.randbelow(MAX_SEED) + 1
