"""Experiment steps: the functions decorated with ``@ex``, ``@ex.result``, ``@ex.persist``.

Calling a step returns a :class:`dask.delayed.Delayed`. The task runs
:func:`run_step`, which receives the trial context as its first argument (a
placeholder replaced when a trial starts) and does the bookkeeping around the
user's function: seeding (global seeders, and the step's generator for
:func:`daskperiment.seeding.rng`), purity hashes, persisting, metric flushing.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import cloudpickle
import dask
from dask.delayed import Delayed

from .context import TrialContext, current_trial, describe_call
from .seeding import StepCall, current_step

if TYPE_CHECKING:
    from .experiment import Experiment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepSpec:
    """What the task needs to run one step; pickled to workers with the graph."""

    name: str
    func: Callable[..., Any]
    persist: bool = False
    pure: bool = True


@dataclass
class StepRun:
    """Passed to the ``step_finished`` hook."""

    name: str
    duration: float
    error: BaseException | None = None
    persisted: bool = False


def _hash(value: Any) -> str | None:
    from .plugins import get_plugin_manager

    return get_plugin_manager().hook.hash_value(value=value)


def _seed(seed: int) -> None:
    from .plugins import get_plugin_manager

    get_plugin_manager().hook.seed_random_state(seed=seed)


def run_step(spec: StepSpec, ctx: TrialContext | None, *args: Any, **kwargs: Any) -> Any:
    """Run one step inside its trial (or plainly, when computed outside a trial)."""
    if ctx is None:
        return spec.func(*args, **kwargs)
    from .plugins import get_plugin_manager

    token = current_trial.set(ctx)
    step = StepCall(spec.name, ctx.seed, args, kwargs, _hash)
    step_token = current_step.set(step)
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        if spec.pure:  # hashed before the call: a step may mutate its inputs
            step.input_hash = _hash((spec.name, args, kwargs))
        _seed(ctx.seed)
        result = spec.func(*args, **kwargs)
        if spec.persist:
            _persist(spec, ctx, result)
        output_hash = _hash(result) if spec.pure and step.input_hash is not None else None
        if output_hash is not None:  # None: not hashable deterministically, so not checked
            ctx.record_step_hash(spec.name, step.input_hash, output_hash, describe_call(args, kwargs))
        return result
    except BaseException as exc:
        error = exc
        raise
    finally:
        current_step.reset(step_token)
        current_trial.reset(token)
        try:
            ctx.metrics.flush()
        finally:
            get_plugin_manager().hook.step_finished(
                experiment_id=ctx.experiment_id, trial_id=ctx.trial_id,
                step=StepRun(spec.name, time.perf_counter() - start, error, spec.persist and error is None))


def _persist(spec: StepSpec, ctx: TrialContext, result: Any) -> None:
    try:
        payload = cloudpickle.dumps(result)
    except Exception as exc:
        raise TypeError(f"@ex.persist step {spec.name!r} returned a {type(result).__qualname__} that cannot "
                        f"be pickled ({exc}); return a picklable value or drop @ex.persist.") from exc
    ctx.backend.save_persisted(spec.name, ctx.trial_id, payload)


class Step:
    """A decorated function; calling it builds a Delayed task of the experiment."""

    def __init__(self, experiment: Experiment, func: Callable[..., Any], *, persist: bool = False,
                 pure: bool = True, result: bool = False) -> None:
        self.experiment = experiment
        self.spec = StepSpec(func.__name__, func, persist, pure)
        self.is_result = result
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        kind = "result" if self.is_result else ("persist" if self.spec.persist else "step")
        return f"<daskperiment {kind} {self.spec.name!r} of experiment {self.experiment.id!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Delayed:
        key = f"{self.spec.name}-{uuid.uuid4()}"
        task = dask.delayed(run_step, pure=False)(self.spec, self.experiment._trial_placeholder, *args,
                                                  dask_key_name=key, **kwargs)
        if not self.is_result:
            return task
        from .trial import TrialResult

        result = TrialResult(task.key, task.dask, experiment=self.experiment)
        self.experiment._maybe_run_script(result)
        return result


__all__ = ["Step", "StepSpec", "StepRun", "run_step"]
