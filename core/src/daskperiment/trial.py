"""Running one trial: from ``result.compute()`` to a stored record."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any

import dask
from dask._task_spec import DataNode, convert_legacy_graph
from dask.delayed import Delayed

from .context import TrialContext, warn_impure
from .serialization import encode_result

if TYPE_CHECKING:
    from .experiment import Experiment

logger = logging.getLogger("daskperiment")

#: A trial record as returned by ``Backend.load_trials`` (a plain dict).
TrialRecord = dict


class TrialResult(Delayed):
    """The Delayed returned by an ``@ex.result`` step: ``compute()`` runs a recorded trial."""

    __slots__ = ("_experiment",)

    def __init__(self, key: str, dsk: Any, *, experiment: Experiment) -> None:
        super().__init__(key, dsk)
        object.__setattr__(self, "_experiment", experiment)

    def compute(self, seed: int | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run one trial and return its result; ``kwargs`` go to :func:`dask.compute`."""
        return run_trial(self._experiment, self, seed=seed, dask_kwargs=kwargs)

    def __reduce__(self):  # a plain Delayed when shipped elsewhere
        return (Delayed, (self.key, self.dask))


def _renamed(key: Any, suffix: str) -> Any:
    return (f"{key[0]}{suffix}", *key[1:]) if isinstance(key, tuple) else f"{key}{suffix}"


def bind_graph(graph: dict, values: dict[Any, Any], suffix: str) -> tuple[dict, dict]:
    """The graph of one trial: ``values`` inlined, every other task under a per-trial key.

    Parameter values and the trial context are inlined into the tasks that use them
    rather than kept as graph nodes: each node costs the scheduler as much as a task.
    Fresh keys matter on a distributed scheduler, which would otherwise reuse a key's
    stale result from the previous trial.
    """
    graph = convert_legacy_graph(graph)
    renames = {key: _renamed(key, suffix) for key in graph if key not in values}
    subs: dict[Any, Any] = {key: DataNode(None, value) for key, value in values.items() if key in graph}
    subs.update(renames)
    return {new: graph[old].substitute(subs, key=new) for old, new in renames.items()}, renames


def run_trial(ex: Experiment, result: TrialResult, *, seed: int | None,
              dask_kwargs: dict[str, Any]) -> Any:
    """Validate, allocate a trial id, run the graph, store the outcome, return the result."""
    from .plugins import get_plugin_manager

    graph = dict(result.__dask_graph__())
    values = ex._parameters.values_for(graph)  # raises before any trial id is consumed
    parameters = ex._parameters.recorded()
    seed = ex._choose_seed(seed)
    code_digest, code_text = ex._code.store(ex._backend)
    env_digest = ex._environment_digest()

    record = {"parameters": parameters, "seed": seed, "started": time.time(), "code": code_digest,
              "environment": env_digest, "host": socket.gethostname(), "pid": os.getpid()}
    trial_id = ex._backend.start_trial(record)
    logger.info("Started Experiment (trial id=%d)", trial_id)
    pm = get_plugin_manager()
    pm.hook.trial_started(experiment_id=ex.id, trial_id=trial_id, parameters=parameters, seed=seed)
    ex._backend.export_code(trial_id, code_text)
    ex._after_trial_started(trial_id, code_digest, env_digest)

    ctx = TrialContext(ex.id, trial_id, ex._backend, seed)
    values[ex._trial_placeholder.key] = ctx
    graph, keys = bind_graph(graph, values, f"-trial{trial_id}-{uuid.uuid4().hex[:8]}")
    pm.hook.seed_random_state(seed=seed)

    start = time.perf_counter()
    try:
        value = dask.compute(Delayed(keys[result.key], graph), **dask_kwargs)[0]
        outcome = encode_result(value)
        outcome["success"] = True
    except BaseException as exc:
        outcome = {"success": False, "description": f"{type(exc).__name__}({exc})",
                   "traceback": "".join(traceback.format_exception(exc)), "result_type": None}
        _finish(ex, ctx, trial_id, outcome, start)
        logger.error("Failed Experiment (trial id=%d): %s", trial_id, outcome["description"])
        raise
    _finish(ex, ctx, trial_id, outcome, start)
    logger.info("Finished Experiment (trial id=%d)", trial_id)
    return value


def _finish(ex: Experiment, ctx: TrialContext, trial_id: int, outcome: dict, start: float) -> None:
    """Flush what steps left behind, then store the outcome (even if flushing failed)."""
    from .plugins import get_plugin_manager

    outcome["process_time"] = time.perf_counter() - start
    try:
        ctx.metrics.flush()
    finally:
        outcome["finished"] = time.time()
        entries = ctx.step_hashes
        previous = ex._backend.complete_trial(trial_id, outcome, [entry[:3] for entry in entries])
        warn_impure(entries, previous)
        get_plugin_manager().hook.trial_finished(experiment_id=ex.id, trial_id=trial_id, record=outcome)


def generate_seed() -> int:
    return secrets.randbelow(2**31 - 1) + 1


__all__ = ["TrialResult", "TrialRecord", "run_trial", "generate_seed"]
