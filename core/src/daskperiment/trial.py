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

from .context import TrialContext, check_purity
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


def _substitute(graph: dict, key: str, value: Any) -> None:
    graph[key] = DataNode(key, value)


def _renamed(key: Any, suffix: str) -> Any:
    return (f"{key[0]}{suffix}", *key[1:]) if isinstance(key, tuple) else f"{key}{suffix}"


def unique_keys(graph: dict, suffix: str) -> tuple[dict, dict]:
    """Give every task a per-trial key.

    The same graph is computed once per trial; a distributed scheduler that still
    holds a key from the previous trial would otherwise reuse that stale result.
    """
    graph = convert_legacy_graph(graph)
    subs = {key: _renamed(key, suffix) for key in graph}
    return {subs[k]: node.substitute(subs, key=subs[k]) for k, node in graph.items()}, subs


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
    for key, value in values.items():
        _substitute(graph, key, value)
    for key in graph:
        if key == ex._trial_placeholder.key:
            _substitute(graph, key, ctx)
    graph, keys = unique_keys(graph, f"-trial{trial_id}-{uuid.uuid4().hex[:8]}")
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
        check_purity(ex._backend, ctx.step_hashes)
    finally:
        outcome["finished"] = time.time()
        ex._backend.finish_trial(trial_id, outcome)
        get_plugin_manager().hook.trial_finished(experiment_id=ex.id, trial_id=trial_id, record=outcome)


def generate_seed() -> int:
    return secrets.randbelow(2**31 - 1) + 1


__all__ = ["TrialResult", "TrialRecord", "run_trial", "generate_seed"]
