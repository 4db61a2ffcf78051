"""Experiment steps: the functions decorated with ``@ex``, ``@ex.result``, ``@ex.persist``.

Calling a step returns a :class:`dask.delayed.Delayed`. The task runs
:func:`run_step`, which receives the trial context as its first argument (a
placeholder replaced when a trial starts) and does the bookkeeping around the
user's function: seeding (global seeders, and the step's generator for
:func:`daskperiment.seeding.rng`), purity hashes, persisting, metric flushing.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Protocol

import dask
from dask.delayed import Delayed
from dask.task_spec import DataNode

from .codecontext import source_of
from .context import TrialContext, current_trial, describe_call
from .dask_compat import as_task_graph
from .errors import DuplicateStepError, PayloadError, UntrackedComputeError
from .payloads import pack, unpack
from .plugins import get_plugin_host
from .records import StepRun
from .seeding import StepCall, current_step
from .stepcache import CacheKey, cache_digest
from .trial import TrialPlanner, TrialResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepSpec:
    """What the task needs to run one step; pickled to workers with the graph."""

    name: str
    func: Callable[..., Any]
    persist: bool = False
    pure: bool = True
    cache: bool = False  #: look the output up in the step cache (see :mod:`daskperiment.stepcache`)
    cache_key: CacheKey = None
    code: str = ""  #: digest of the step's source, part of its cache entries' digests
    result: bool = False  #: the ``@ex.result`` step: runs only inside a recorded trial


def _hash(value: Any) -> str | None:
    return get_plugin_host().hash_value(value)


def run_step(spec: StepSpec, ctx: TrialContext | None, *args: Any, **kwargs: Any) -> Any:
    """Run one step inside its trial (or plainly, when computed outside a trial)."""
    if ctx is None:
        if spec.result:  # e.g. dask.compute(f(s)) on a Delayed built from the trial result
            raise UntrackedComputeError(
                f"The @ex.result step {spec.name!r} ran outside a trial (a Delayed built on the trial result "
                "was computed directly), so nothing would be recorded. Compute the trial result itself: "
                "s.compute() for one trial, ex.sweep(s, ...).compute() for many.")
        return spec.func(*args, **kwargs)
    host = get_plugin_host()
    if not ctx.is_origin:  # away from the driver: record into the running task's outbox
        ctx = ctx.relaying()
    token = current_trial.set(ctx)
    step = StepCall(spec.name, ctx.seed, args, kwargs, _hash)
    step_token = current_step.set(step)
    start = time.perf_counter()
    error: BaseException | None = None
    output_hash: str | None = None
    cached: str | None = None
    try:
        if spec.pure:  # hashed before the call: a step may mutate its inputs
            step.input_hash = host.hash_value((spec.name, args, kwargs))
        digest = _cache_entry(spec, ctx, step.input_hash) if spec.cache else None
        payload = _load_cached(ctx, digest) if digest is not None else None
        if payload is not None:
            result, cached = _cached_output(spec, payload)
            if cached is None and digest is not None:
                ctx.backend.delete_cached([digest])  # replaced below by this run's output
        if cached is None:
            host.seed_random_state(ctx.seed)
            result = spec.func(*args, **kwargs)
            if digest is not None:
                cached = _store_cached(spec, ctx, digest, result)
        if spec.persist:
            _persist(spec, ctx, result)
        input_hash = step.input_hash
        output_hash = host.hash_value(result) if spec.pure and input_hash is not None else None
        if input_hash is not None and output_hash is not None:  # None: not hashable deterministically
            ctx.record_step_hash(spec.name, input_hash, output_hash, functools.partial(describe_call, args, kwargs))
        return result
    except BaseException as exc:
        error = exc
        raise
    finally:
        current_step.reset(step_token)
        current_trial.reset(token)
        seconds = time.perf_counter() - start
        ctx.record_step(spec.name, {"input": step.input_hash, "output": output_hash, "seconds": seconds,
                                    "error": None if error is None else f"{type(error).__name__}({error})",
                                    "cache": cached})
        try:
            ctx.metrics.flush()
        finally:
            host.step_finished(experiment_id=ctx.experiment_id, trial_id=ctx.trial_id,
                               step=StepRun(spec.name, seconds, error, spec.persist and error is None))


def _cache_entry(spec: StepSpec, ctx: TrialContext, input_hash: str | None) -> str | None:
    """The step-cache digest of this call, or ``None`` when it is not cached."""
    if not spec.cache or input_hash is None:
        return None
    if not ctx.backend.supports_cache:
        if ctx.backend.uri not in _warned_no_cache:
            _warned_no_cache.add(ctx.backend.uri)
            logger.warning("%r does not support the step cache: cache=True steps run every time", ctx.backend)
        return None
    return cache_digest(spec.name, spec.code, input_hash, spec.cache_key)


_warned_no_cache: set[str] = set()


def _load_cached(ctx: TrialContext, digest: str) -> bytes | None:
    """The cached output of a call, read from the backend. A relaying step on a worker that
    cannot reach the backend (the driver's local directory, say) runs without it: one log
    line per process, and the outputs it computes still reach the cache through the driver."""
    if ctx.outbox is None:
        return ctx.backend.load_cached(digest)
    if ctx.backend.uri in _unreachable_cache:
        return None
    try:
        return ctx.backend.load_cached(digest)
    except Exception as exc:  # noqa: BLE001 - a cache read may always fall back to computing
        _unreachable_cache.add(ctx.backend.uri)
        logger.warning("This worker cannot read the step cache of %r (%s): cache=True steps run here without "
                       "looking it up; the outputs they compute are stored by the driver.", ctx.backend, exc)
        return None


_unreachable_cache: set[str] = set()


def _cached_output(spec: StepSpec, payload: bytes) -> tuple[Any, str | None]:
    """``(output, "hit")``, or ``(None, None)`` for an entry that cannot be trusted or read (a
    pickle not signed with our key, written by an older version or planted): the step then runs
    and its output replaces the entry; nothing of it is unpickled."""
    try:
        return unpack(payload, f"the cached output of step {spec.name!r}"), "hit"
    except PayloadError as exc:
        logger.warning("Step cache entry of %r not used: %s", spec.name, exc)
        return None, None


def _store_cached(spec: StepSpec, ctx: TrialContext, digest: str, result: Any) -> str | None:
    try:
        payload = pack(result)
    except Exception as exc:  # the step still counts; only the cache is skipped
        logger.warning("Step %r returned a %s that cannot be pickled (%s): not cached", spec.name,
                       type(result).__qualname__, exc)
        return None
    ctx.save_cached(digest, payload)
    return "miss"


def _persist(spec: StepSpec, ctx: TrialContext, result: Any) -> None:
    try:
        payload = pack(result)
    except Exception as exc:
        raise TypeError(f"@ex.persist step {spec.name!r} returned a {type(result).__qualname__} that cannot "
                        f"be pickled ({exc}); return a picklable value or drop @ex.persist.") from exc
    ctx.save_persisted(spec.name, payload)


def _spec_of(node: Any) -> StepSpec | None:
    """The step a graph node runs, or ``None`` for a task that is not a step."""
    if getattr(node, "func", None) is not run_step:
        return None
    args = getattr(node, "args", ())
    first = args[0] if args else None
    if isinstance(first, DataNode):
        first = first.value
    return first if isinstance(first, StepSpec) else None


def _where(func: Callable[..., Any]) -> str:
    code = getattr(func, "__code__", None)
    place = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else "unknown place"
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)} ({place})"


def check_unique_steps(graph: Mapping[Any, Any]) -> None:
    """Refuse a graph holding two different functions under one step name.

    Persisted results, purity hashes and the code record are kept per step name, so
    two functions sharing one would overwrite each other unpredictably. The same
    function called many times is one step; a re-defined step replaces the old one
    in graphs built after it.
    """
    seen: dict[str, Callable[..., Any]] = {}
    for node in as_task_graph(graph).values():
        spec = _spec_of(node)
        if spec is None:
            continue
        other = seen.setdefault(spec.name, spec.func)
        if other is not spec.func:
            raise DuplicateStepError(
                f"Two different steps named {spec.name!r} are in one trial's graph: {_where(other)} and "
                f"{_where(spec.func)}. Persisted results and purity checks are kept per step name, so they "
                "would mix: rename one of the functions, or rebuild the graph after re-defining the step "
                "(no trial was recorded).")


class StepOwner(TrialPlanner, Protocol):
    """What a :class:`Step` needs from its experiment (implemented by ``Experiment``)."""

    id: str

    @property
    def trial_placeholder(self) -> Delayed:
        """The task every step takes first: replaced by the trial's context when a trial runs."""

    def result_created(self, result: TrialResult, caller: FrameType | None) -> None:
        """Called when an ``@ex.result`` step is called, with the caller's frame (script mode)."""


class Step:
    """A decorated function; calling it builds a Delayed task of the experiment."""

    def __init__(self, owner: StepOwner, func: Callable[..., Any], *, persist: bool = False,
                 pure: bool = True, result: bool = False, cache: bool = False, cache_key: CacheKey = None) -> None:
        self.owner = owner
        code = hashlib.sha256(source_of(func).encode()).hexdigest()[:32]
        self.spec = StepSpec(func.__name__, func, persist, pure, cache and pure, cache_key, code, result)
        self.is_result = result
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        kind = "result" if self.is_result else ("persist" if self.spec.persist else "step")
        return f"<daskperiment {kind} {self.spec.name!r} of experiment {self.owner.id!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Delayed:
        key = f"{self.spec.name}-{uuid.uuid4()}"
        task: Delayed = dask.delayed(run_step, pure=False)(self.spec, self.owner.trial_placeholder, *args,
                                                  dask_key_name=key, **kwargs)
        if not self.is_result:
            return task
        result = TrialResult(task.key, task.dask, planner=self.owner, step=self.spec.name)
        frame = inspect.currentframe()
        self.owner.result_created(result, frame.f_back if frame is not None else None)
        return result


__all__ = ["Step", "StepOwner", "StepSpec", "StepRun", "check_unique_steps", "run_step"]
