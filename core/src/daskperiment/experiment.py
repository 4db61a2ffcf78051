"""The :class:`Experiment`: parameters, steps, trials and their history."""

from __future__ import annotations

import dataclasses
import keyword
import logging
import os
import socket
import sys
import threading
import weakref
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, Callable, Iterable, overload

import dask
import numpy as np
import pandas as pd
from dask.delayed import Delayed

from . import environment, environment_view, script, trial
from .backends import Backend
from .codecontext import CodeContext, join_code
from .comparison import TrialDiff, code_changes, compare_trials, environment_changes
from .context import current_trial, get_current, require_current
from .errors import (DaskperimentError, InvalidArgumentError, LockedTrialError, MetricNotFoundError,
                     MetricNotInTrialError, PersistedResultNotFoundError, TrialIDNotFoundError)
from .heartbeat import abandoned_after
from .history import abandoned, clean_columns, gc_paused, history_frame, metric_frame
from .metrics import BATCH_POINTS, check_metric_key, check_metric_value, metric_arrays
from .parameters import UNDEFINED, Parameter, ParameterStore
from .payloads import decode_result, unpack
from .plugins import get_plugin_host
from .records import SHOWN_FIELDS, VERBOSE_FIELDS
from .reproduction import Reproduction, divergent_steps, first_divergence, same_outcome
from .serialization import decode_parameters
from .stepcache import CacheKey, evict, parse_size
from .dask_compat import as_task_graph
from .steps import Step, check_unique_steps
from .sweep import Sweep, expand_trials
from .trial import MAX_SEED, StartedTrial, TrialPlan, TrialResult, generate_seed

logger = logging.getLogger("daskperiment")
_current_trial = current_trial.get

#: What ``@ex(pure=False)`` (a decorator called with options only) returns.
StepDecorator = Callable[[Callable[..., Any]], Step]


def _no_trial() -> None:
    """Placeholder task: replaced by the TrialContext when a trial runs."""
    return None


#: The longest experiment id, in UTF-8 bytes: file names built from it (``<id>.sqlite3-wal``,
#: ``persist/<id>_<step>_<trial>.pkl``, ``environment/<section>_<id>_<digest>.json``) must stay
#: below the 255-byte limit of common file systems, with room for step names.
MAX_ID_LENGTH = 128

#: Result graphs whose converted, checked form an Experiment keeps (the newest ones).
GRAPH_CACHE_SIZE = 16

#: What ``backend=`` the original daskperiment took for its default local store.
ORIGINAL_LOCAL_BACKEND = "local"


def validate_id(experiment_id: Any) -> str:
    """Experiment ids become paths and keys: only Python identifiers of a safe length are allowed.

    Messages begin as the original's did (``Experiment ID must be …``) and then say why and what to do.
    """
    if not isinstance(experiment_id, str):
        raise InvalidArgumentError(
            f"Experiment ID must be str, given: {experiment_id!r}{type(experiment_id)}. Use a Python "
            "identifier such as 'my_experiment': it names the storage directory and keys.")
    if not experiment_id.isidentifier() or keyword.iskeyword(experiment_id):
        raise InvalidArgumentError(
            f"Experiment ID must be valid as python identifier: {experiment_id!r}. Use letters, digits and "
            "underscores, not starting with a digit and not a Python keyword: it is used as a directory "
            "name and a storage key.")
    size = len(experiment_id.encode())
    if size > MAX_ID_LENGTH:
        raise InvalidArgumentError(
            f"Experiment ID must be at most {MAX_ID_LENGTH} bytes long, given one of {size} bytes "
            f"({experiment_id[:40]!r}...): file names are built from it and must stay below the 255-byte "
            "limit of file systems. Use a shorter id.")
    return experiment_id


def validate_seed(seed: Any) -> int:
    """A seed every seeder accepts: an int in 0 … :data:`~daskperiment.trial.MAX_SEED`."""
    if isinstance(seed, np.integer):  # numpy's bool is not an integer type
        seed = int(seed)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise InvalidArgumentError(
            f"seed must be a non-negative int up to 2**32 - 1 ({MAX_SEED}), given: {seed!r}"
            f"{type(seed)}. Larger seeds would be truncated by numpy's seeding, so two different seeds "
            "could draw the same numbers; hash a larger value down if you need one.")
    return seed


def _ensure_console_logging() -> None:
    """Show INFO logs like the original when the application configured no logging."""
    pkg = logging.getLogger("daskperiment")
    if pkg.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
    pkg.addHandler(handler)
    if pkg.level == logging.NOTSET:
        pkg.setLevel(logging.INFO)


class Experiment:
    """A chain of steps and parameters whose every ``compute()`` is a recorded trial.

    :param id: experiment name (a Python identifier); trials of the same id are shared.
    :param backend: ``None`` or ``'local'`` (``daskperiment_cache/<id>``), a :class:`pathlib.Path`,
        a URI such as ``redis://host:6379/0``, or a client object a plugin accepts.
    :param seed: default random seed for trials computed without ``seed=`` (0 … 2**32 - 1).
    :param cache: cache every pure step's output by default (see :mod:`daskperiment.stepcache`);
        a step's own ``cache=`` wins.
    :param cache_limit: bound of the step cache (``"2GB"``, ``"512MiB"`` or bytes): least
        recently used entries are evicted before each trial; ``None`` for no bound.

    As in the original, ``Experiment(id)`` returns the instance already made in this process for
    the same id and the same store (while it is in use), so re-running a notebook cell keeps the
    declared parameters and steps; ``seed``, ``cache=True`` or ``cache_limit`` given again replace
    the earlier ones.
    """

    _instances: weakref.WeakValueDictionary[tuple[str, str], Experiment] = weakref.WeakValueDictionary()
    _instances_lock = threading.Lock()
    _backend: Backend
    _init_lock: threading.Lock
    id: str
    seed: int | None
    cache: bool
    cache_limit: int | None

    def __new__(cls, id: str, backend: Any = None, seed: int | None = None, cache: bool = False,
                cache_limit: int | str | None = None) -> Experiment:
        experiment_id = validate_id(id)
        if seed is not None:
            validate_seed(seed)
        if isinstance(backend, str) and backend == ORIGINAL_LOCAL_BACKEND:
            backend = None
        store = get_plugin_host().make_backend(experiment_id, backend)
        key = (experiment_id, store.identity)
        with cls._instances_lock:
            existing = cls._instances.get(key)
            if existing is not None and type(existing) is cls:
                return existing
            self = super().__new__(cls)
            self._backend = store
            self._init_lock = threading.Lock()  # two threads making it at once initialise it once
            cls._instances[key] = self
        return self

    def __init__(self, id: str, backend: Any = None, seed: int | None = None, cache: bool = False,
                 cache_limit: int | str | None = None) -> None:
        with self._init_lock:
            if getattr(self, "_initialised", False):  # the instance already made for this id and store
                if seed is not None:
                    self.seed = seed
                if cache:
                    self.cache = True
                if cache_limit is not None:
                    self.cache_limit = parse_size(cache_limit)
                return
            self._initialise(id, seed, cache, cache_limit)

    def _initialise(self, id: str, seed: int | None, cache: bool, cache_limit: int | str | None) -> None:
        _ensure_console_logging()
        self.id = id
        self.cache_limit = parse_size(cache_limit)
        self.seed = seed
        self.cache = bool(cache)
        self._init_state()
        last = self._reader.last_trial_id()  # reach the store now: a wrong URI or password fails here
        self._initialised = True
        # the text, not the instance: a log record kept by a handler must not keep the instance alive
        logger.info("Loaded %s" if last else "Initialized new experiment: %s", self._describe(last))
        environment.prefetch()
        script.arguments.start()

    def _init_state(self) -> None:
        self._parameters = ParameterStore(self.id)
        self._code = CodeContext()
        self._trial_placeholder: Delayed = dask.delayed(_no_trial, pure=True)(
            dask_key_name=f"daskperiment-trial-{self.id}-{self._parameters.token}")
        self._lock = threading.Lock()
        self._previous: tuple[int, str | None, str | None] | None = None  # last trial: id, code, env
        self._stored_envs: set[str] = set()
        self._script_ran = False
        #: the latest graph built by each result step, by name: what ``reproduce`` re-runs
        self._results: dict[str, TrialResult] = {}
        #: id of a result's graph → (the graph, its task-spec nodes): see :meth:`_task_graph`
        self._graphs: dict[int, tuple[Any, dict[Any, Any]]] = {}

    # Shipped to Dask workers inside step closures: rebuild quietly, no I/O.
    def __reduce__(self) -> tuple[Callable[..., Experiment], tuple[Any, ...]]:
        return (_restore, (self.id, self._backend, self.seed, self._parameters, self.cache, self.cache_limit))

    def __repr__(self) -> str:
        return self._describe(self._reader.last_trial_id())

    def _describe(self, last_trial_id: int) -> str:
        return f"Experiment(id: {self.id}, trial_id: {last_trial_id}, backend: {self._backend!r})"

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def _reader(self) -> Backend:
        """What every read goes through: a view of the backend that never writes nor creates
        anything (``Backend.read_only``), so reading works on a read-only store."""
        reader = self.__dict__.get("_read_view")
        if reader is None:
            reader = self.__dict__["_read_view"] = self._backend.read_only()
        return reader

    # ---- parameters -----------------------------------------------------
    def parameter(self, name: str, default: Any = UNDEFINED) -> Parameter:
        """Declare a parameter (a Delayed whose value is bound at each trial)."""
        self._parameters.declare(name, default)
        return Parameter(self._parameters, name)

    def set_parameters(self, **values: Any) -> None:
        """Set parameter values for the next trials; every name must be declared."""
        self._parameters.set(**values)

    def get_parameters(self, trial_id: int | None = None) -> dict[str, Any]:
        """Current parameter values, or those a recorded trial ran with (exactly: see
        :func:`daskperiment.serialization.encode_value` for the types kept)."""
        if trial_id is None:
            return dict(self._parameters.defined())
        return decode_parameters(self._trial_record(trial_id).get("parameters"))

    # ---- decorators (each used bare, ``@ex``, or with options, ``@ex(pure=False)``) ------------
    def _decorate(self, func: Callable[..., Any] | None, *, pure: bool, cache: bool | None, cache_key: CacheKey,
                  **options: Any) -> Step | StepDecorator:
        if cache and not pure:
            raise ValueError("A step with pure=False is never cached (its output may differ for the same "
                             "inputs): drop cache=True, or pure=False if the step is in fact pure.")

        def wrap(f: Callable[..., Any]) -> Step:
            if isinstance(f, Step):
                f = f.spec.func
            self._code.add(f.__name__, f)
            cached = self.cache if cache is None else cache
            return Step(self, f, pure=pure, cache=cached, cache_key=cache_key, **options)

        return wrap(func) if func is not None else wrap

    @overload
    def __call__(self, func: Callable[..., Any], *, pure: bool = True, cache: bool | None = None,
                 cache_key: CacheKey = None) -> Step: ...
    @overload
    def __call__(self, func: None = None, *, pure: bool = True, cache: bool | None = None,
                 cache_key: CacheKey = None) -> StepDecorator: ...

    def __call__(self, func: Callable[..., Any] | None = None, *, pure: bool = True, cache: bool | None = None,
                 cache_key: CacheKey = None) -> Step | StepDecorator:
        """``@ex`` / ``@ex(pure=False)`` / ``@ex(cache=True)``: an experiment step.

        :param cache: load the output from the step cache when the step's code and inputs
            match a stored run (default: the experiment's ``cache``); never for ``pure=False``.
        :param cache_key: a string, or a callable returning one, added to the cache entry's
            digest: change it to invalidate what the digest cannot see (a helper's code, a file).
        """
        return self._decorate(func, pure=pure, cache=cache, cache_key=cache_key)

    @overload
    def result(self, func: Callable[..., Any], *, pure: bool = True, cache: bool | None = None,
               cache_key: CacheKey = None) -> Step: ...
    @overload
    def result(self, func: None = None, *, pure: bool = True, cache: bool | None = None,
               cache_key: CacheKey = None) -> StepDecorator: ...

    def result(self, func: Callable[..., Any] | None = None, *, pure: bool = True, cache: bool | None = None,
               cache_key: CacheKey = None) -> Step | StepDecorator:
        """``@ex.result``: the step whose value is the trial's result."""
        return self._decorate(func, pure=pure, cache=cache, cache_key=cache_key, result=True)

    @overload
    def persist(self, func: Callable[..., Any], *, pure: bool = True, cache: bool | None = None,
                cache_key: CacheKey = None) -> Step: ...
    @overload
    def persist(self, func: None = None, *, pure: bool = True, cache: bool | None = None,
                cache_key: CacheKey = None) -> StepDecorator: ...

    def persist(self, func: Callable[..., Any] | None = None, *, pure: bool = True, cache: bool | None = None,
                cache_key: CacheKey = None) -> Step | StepDecorator:
        """``@ex.persist``: a step whose result is kept per trial (``get_persisted``)."""
        return self._decorate(func, pure=pure, cache=cache, cache_key=cache_key, persist=True)

    def clear_cache(self) -> int:
        """Delete every step-cache entry of this experiment; returns how many there were."""
        if not self._backend.supports_cache:
            return 0
        entries = self._backend.cached_entries()
        self._backend.delete_cached(entry.digest for entry in entries)
        return len(entries)

    # ---- trial ids --------------------------------------------------------
    @property
    def current_trial_id(self) -> int:
        """The id of the trial running this step (only inside a step)."""
        return require_current(self.id, "Current Trial ID").trial_id

    @property
    def trial_id(self) -> int:
        """The id of the last trial; not readable inside a running trial."""
        if get_current(self.id) is not None:
            raise LockedTrialError(
                "Unable to refer to trial_id during a trial execution: use ex.current_trial_id "
                "to get the id of the running trial.")
        return self._reader.last_trial_id()

    # ---- metrics ------------------------------------------------------------
    def save_metric(self, metric_key: str, epoch: Any, value: Any) -> None:
        """Record one point of metric ``metric_key`` in the running trial (buffered; very cheap).

        ``value`` must be a real scalar (int, float, bool or a numpy scalar); the epoch a number.
        Points are kept in the order saved, two points at the same epoch included;
        :meth:`load_metric` shows the last one saved for an epoch when it joins several trials.
        """
        ctx = _current_trial()
        if ctx is None or ctx.experiment_id != self.id:
            ctx = require_current(self.id, "save_metric")
        metrics = ctx.metrics
        series = metrics.series.get(metric_key) if type(metric_key) is str else None
        if series is None:
            series = metrics.new_series(check_metric_key(metric_key))
        check_metric_value(metric_key, value)
        series[0].append(epoch)
        series[1].append(value)
        metrics.pending += 1
        if metrics.pending >= BATCH_POINTS:
            metrics.flush()

    def save_metrics(self, metric_key: str, epochs: Any, values: Any) -> None:
        """Record many points of ``metric_key`` at once: ``epochs`` and ``values`` are equally long
        1-d arrays (or sequences) of numbers. Written straight to the backend, in order, after the
        points buffered by :meth:`save_metric` so far."""
        ctx = _current_trial()
        if ctx is None or ctx.experiment_id != self.id:
            ctx = require_current(self.id, "save_metrics")
        epoch_array, value_array = metric_arrays(check_metric_key(metric_key), epochs, values)
        ctx.metrics.write(metric_key, epoch_array, value_array)

    def load_metric(self, metric_key: str, trial_id: int | Iterable[int]) -> pd.DataFrame:
        """Metric points as a DataFrame: index ``Epoch``, one column per ``Trial ID``.

        :raises TrialIDNotFoundError: for a trial id that does not exist or is not an int, and
            (as :class:`~daskperiment.errors.MetricNotInTrialError`) for an existing trial that
            saved no points of this metric.
        :raises MetricNotFoundError: (a ``ValueError``) when no trial ever saved this metric.
        """
        check_metric_key(metric_key)
        if isinstance(trial_id, (list, tuple, range, np.ndarray, pd.Index, pd.Series)):
            if len(trial_id) == 0:
                self._check_trial_id(trial_id)  # raises: an empty list names no trial
            ids = [self._check_trial_id(t) for t in trial_id]
        else:
            ids = [self._check_trial_id(trial_id)]
        series = self._reader.load_metrics(metric_key, ids)
        missing = [t for t in ids if t not in series]
        if missing:
            saved = self._reader.metric_keys()
            if metric_key not in saved:
                raise MetricNotFoundError(
                    f"Unable to find saved metric with specified key: {metric_key!r}. Metrics saved in "
                    f"experiment {self.id!r}: {', '.join(map(repr, saved)) or 'none'}.")
            raise MetricNotInTrialError(
                f"Unable to find trial id: {missing[0]} for metric {metric_key!r}: trial(s) "
                f"{', '.join(map(str, missing))} of experiment {self.id!r} saved no points of it (metrics saved "
                f"in trial {missing[0]}: {', '.join(map(repr, self._reader.metric_keys(missing[0]))) or 'none'}).")
        return metric_frame(series, ids)

    # ---- persisted results, code, environment, history -----------------------
    def get_persisted(self, step_name: str, trial_id: int) -> Any:
        """The result a ``@ex.persist`` step returned in ``trial_id`` (a pickle only when signed with
        your key, see :mod:`daskperiment.payloads`)."""
        trial_id = self._check_trial_id(trial_id)
        payload = self._reader.load_persisted(step_name, trial_id)
        if payload is None:
            raise PersistedResultNotFoundError(
                f"No persisted result for step {step_name!r} in trial {trial_id} of experiment "
                f"{self.id!r}: decorate the step with @ex.persist and check the trial id.")
        return unpack(payload, f"the persisted result of step {step_name!r} in trial {trial_id}")

    def get_result(self, trial_id: int) -> Any:
        """The exact result object of a trial, decoded as its record says (see :mod:`daskperiment.payloads`)."""
        return decode_result(self._trial_record(trial_id))

    def get_code(self, trial_id: int | None = None) -> str:
        """The source of every step: as now, or as it was in ``trial_id``."""
        if trial_id is None:
            return join_code(self._code.steps)
        return join_code(self._code_document(self._trial_record(trial_id).get("code")))

    def get_environment(self, trial_id: int | None = None, category: str | None = None) -> Any:
        """Environment sections of this process or of ``trial_id``: a ``dict`` of plain data that
        ``print()`` shows as readable text, like the original's.

        :param category: one section (``device``, ``python``, ``requirements``, ``git``, ``cpu`` …;
            the original's ``platform`` means ``device``) instead of all.
        """
        if trial_id is None:
            sections = environment.current_sections()
        else:
            digest = self._trial_record(trial_id).get("environment")
            sections = (self._reader.load_document("environment", digest) if digest else None) or {}
        if category is None:
            return environment_view.EnvironmentView(sections)
        name = environment_view.resolve_category(category, sections)
        if name not in sections:
            raise InvalidArgumentError(
                f"Category must be either {', '.join(sorted(sections))}, given: {category!r} (the original's "
                f"{', '.join(sorted(environment_view.CATEGORY_ALIASES))} works too).")
        return environment_view.view(sections[name])

    def get_python_packages(self, trial_id: int | None = None) -> str:
        """The installed distributions as ``pip freeze`` prints them (``name==version`` lines)."""
        return environment_view.pip_freeze(str(self.get_environment(trial_id, category="requirements")))

    def get_history(self, verbose: bool = False) -> pd.DataFrame:
        """Every trial as a row: parameters, Result, Success, Finished, Process Time, Description."""
        reader = self._reader
        with gc_paused():
            columns = clean_columns(reader.load_history(VERBOSE_FIELDS if verbose else SHOWN_FIELDS),
                                    reader.report_corrupt)
            unfinished = [t for t, s, f in zip(columns["trial_id"], columns["success"], columns["finished"])
                          if s is None and f is None]
            return history_frame(columns, verbose=verbose, abandoned=self._abandoned(unfinished))

    def diff(self, a: int, b: int) -> TrialDiff:
        """What differs between trials ``a`` and ``b``: parameters, seed, result, status, code per
        step (unified diffs), environment (packages, Python, platform, git) and a metrics summary.
        ``print(ex.diff(3, 7))`` reads as a report."""
        return compare_trials(self._reader, self._trial_record(a), self._trial_record(b))

    def reproduce(self, trial_id: int, runs: int = 1, **dask_kwargs: Any) -> Reproduction:
        """Re-run trial ``trial_id`` with its recorded parameters and seed, and compare.

        The graph is the one last built by the trial's result step in this process (call
        the step first, as the script or notebook does), so the *current* code runs. Before
        running, every difference from the record is logged as a WARNING (code per step,
        environment); each run is recorded as a new trial with ``reproduces=trial_id``.
        With ``runs=2`` or more the trial runs that many times (on a cluster, wherever the
        scheduler puts it) and steps whose output differs between the runs are named: a
        determinism audit of what the seed does not cover.
        """
        if not isinstance(runs, int) or runs < 1:
            raise ValueError(f"runs must be a positive int, got {runs!r}")
        record = self._trial_record(trial_id)
        step = record.get("result_step")
        result = self._results.get(step) if step else None
        if result is None:
            raise DaskperimentError(
                f"Cannot reproduce trial {trial_id} of experiment {self.id!r}: its result step "
                f"{step or '(not recorded: the trial predates reproduction)'!r} has not built a graph in this "
                f"process. Call {step or 'the result step'}(...) as the experiment does, then reproduce.")
        code = code_changes(self._code_document(record.get("code")), self._code.steps)
        before_env = self._reader.load_document("environment", record["environment"]) \
            if record.get("environment") else None
        environment_now = environment_changes(before_env or {}, environment.current()[1])
        for name, diff in code.items():
            logger.warning("Code of step %r changed since trial %d:\n%s", name, trial_id, diff)
        for line in environment_now.lines():
            logger.warning("Environment changed since trial %d: %s", trial_id, line)
        declared = set(self._parameters.names)
        parameters = {k: v for k, v in decode_parameters(record.get("parameters")).items() if k in declared}
        for name in sorted(set(record.get("parameters") or {}) - declared):
            logger.warning("Parameter %r of trial %d is no longer declared: left out", name, trial_id)
        value, error = None, None
        new_ids: list[int] = []
        for run in range(runs):
            plan = dataclasses.replace(self.plan(result, parameters, record.get("seed")), reproduces=trial_id)
            try:
                outcome = trial.run(plan, dask_kwargs=dask_kwargs, on_started=self._remember(new_ids))
                if run == 0:
                    value = outcome
            except Exception as exc:  # recorded as a failed trial; the report says so
                if run == 0:
                    error = f"{type(exc).__name__}({exc})"
        again = self._reader.load_trials(new_ids)
        first = again[0]
        nondeterministic = sorted({d.step for other in again[1:] for d in divergent_steps(first, other)})
        return Reproduction(trial_id, new_ids, same_outcome(record, first) and not nondeterministic, value, error,
                            code, environment_now, first_divergence(record, first), nondeterministic)

    def _remember(self, ids: list[int]) -> Callable[[StartedTrial], None]:
        def on_started(started: StartedTrial) -> None:
            ids.append(started.trial_id)
            self.trial_started(started)

        return on_started

    def start_dashboard(self, host: str = "127.0.0.1", port: int = 5000, blocking: bool | None = None) -> Any:
        """Serve the read-only dashboard (see :mod:`daskperiment.dashboard`); returns the server
        (``.url``, ``.shutdown()``). Blocking in a script, a background thread in a notebook."""
        from .dashboard import serve_experiment  # the dashboard is a leaf above the experiment: imported on use

        return serve_experiment(self, host=host, port=port, blocking=blocking)

    # ---- the trial pipeline (TrialPlanner / StepOwner, see trial.py and steps.py) --------------
    @property
    def trial_placeholder(self) -> Delayed:
        return self._trial_placeholder

    def plan(self, result: Delayed, overrides: Mapping[str, Any], seed: int | None) -> TrialPlan:
        """Fix everything one trial needs; every check raises before a trial id is used."""
        shared, [(bindings, recorded)] = self._plan_parts(result, [overrides])
        # the seed is chosen (and logged) once everything else is valid
        return TrialPlan(**shared, bindings=bindings, parameters=recorded, seed=self.choose_seed(seed),
                         result_step=getattr(result, "step", None))

    def plan_trials(self, result: Delayed, overrides: Sequence[Mapping[str, Any]], seed: int) -> list[TrialPlan]:
        """One plan per ``overrides`` mapping, all with ``seed``; raises before any trial id is used.

        The graph, code and environment are captured once for all the plans (a sweep plans
        thousands of trials of one graph).
        """
        shared, checked = self._plan_parts(result, overrides)
        result_step = getattr(result, "step", None)
        return [TrialPlan(**shared, bindings=bindings, parameters=recorded, seed=seed, result_step=result_step)
                for bindings, recorded in checked]

    def _plan_parts(self, result: Delayed, overrides: Sequence[Mapping[str, Any]]
                    ) -> tuple[dict[str, Any], list[tuple[dict[str, Any], dict[str, Any]]]]:
        """The :class:`TrialPlan` fields every plan of ``result`` shares (graph, code and environment
        digests …) and each plan's ``(bindings, recorded parameters)``."""
        graph = self._task_graph(result)
        checked = []
        for values in map(self._parameters.snapshot, overrides):  # every check first: nothing written yet
            checked.append((self._parameters.bindings(values, graph), ParameterStore.recorded(values)))
        if self.cache_limit is not None and self._backend.supports_cache:
            evict(self._backend, self.cache_limit)
        code_digest, code_text = self._code.store(self._backend)
        return ({"experiment_id": self.id, "backend": self._backend, "graph": graph, "result_key": result.key,
                 "placeholder_key": self._trial_placeholder.key, "code_digest": code_digest, "code_text": code_text,
                 "environment_digest": self._environment_digest()}, checked)

    def _task_graph(self, result: Delayed) -> dict[Any, Any]:
        """``result``'s graph as task-spec nodes, its step names checked; done once per graph object.

        ``s.with_parameters(...)`` shares ``s``'s graph, so trials of one result (thousands, in
        a loop) convert and check it once. Dask graphs are immutable; the cache holds the graph
        itself, so an id is never reused while its entry lives.
        """
        graph = result.__dask_graph__()
        cached = self._graphs.get(id(graph))
        if cached is None or cached[0] is not graph:
            tasks = as_task_graph(graph)
            check_unique_steps(tasks)
            cached = (graph, tasks)
            with self._lock:
                if len(self._graphs) >= GRAPH_CACHE_SIZE:
                    self._graphs.pop(next(iter(self._graphs)))
                self._graphs[id(graph)] = cached
        return cached[1]

    def sweep(self, result: TrialResult, trials: Iterable[Mapping[str, Any]] | None = None,
              **grid: Iterable[Any]) -> Sweep:
        """Many trials of ``result`` to compute as one Dask graph (see :class:`~daskperiment.Sweep`).

        :param trials: any iterable of parameter dicts, one per trial (scikit-learn's
            ``ParameterGrid`` / ``ParameterSampler`` plug in here).
        :param grid: ``name=[values …]``: the cartesian product of the lists (combined with
            each of ``trials`` when both are given). Parameters not named keep their current values.

        Every trial is validated here, before any trial id is allocated.
        """
        if not isinstance(result, TrialResult) or result.planner is not self:
            raise TypeError(f"ex.sweep() needs the value of an @ex.result step of experiment {self.id!r}, "
                            f"got {result!r}.")
        return Sweep(result, expand_trials(trials, grid))

    def trial_started(self, trial: StartedTrial) -> None:
        script.arguments.trials += 1
        self._after_trial_started(trial.trial_id, trial.plan.code_digest, trial.plan.environment_digest)

    def result_created(self, result: TrialResult, caller: FrameType | None) -> None:
        """Script mode: a result step called as a statement in ``__main__`` runs one trial."""
        self._results[result.step] = result
        if not self._script_ran and script.is_script_call(caller):
            self._script_ran = True
            reproduce = os.environ.get(script.ENV_REPRODUCE)
            if reproduce:
                report = self.reproduce(int(reproduce))
                logger.log(logging.INFO if report.identical else logging.WARNING, "%s", report)
                sys.exit(0 if report.identical else 1)
            script.run_script(result, self.id, self._parameters.declared(), UNDEFINED)

    # ---- internals -----------------------------------------------------------------------------
    def _abandoned(self, unfinished: list[int]) -> dict[int, str]:
        """Trial id → description of the unfinished trials whose process is gone (computed on read,
        never written: see :mod:`daskperiment.heartbeat`)."""
        if not unfinished:
            return {}
        records = clean_columns({f: [r.get(f) for r in self._reader.load_trials(unfinished)]
                                 for f in ("trial_id", "host", "pid", "heartbeat", "started")},
                                self._reader.report_corrupt)
        rows = [dict(zip(records, values)) for values in zip(*records.values())]
        return abandoned(rows, hostname=socket.gethostname(), now=time.time(), timeout=abandoned_after())

    def _check_trial_id(self, trial_id: Any) -> int:
        """``trial_id`` as an int when it names an allocated trial, else a clear error.

        Like the original: only ints (numpy integers too, never bools, strings or floats),
        1 … the last trial id.
        """
        if isinstance(trial_id, (int, np.integer)) and not isinstance(trial_id, (bool, np.bool_)):
            last = self._reader.last_trial_id()
            if 1 <= trial_id <= last:
                return int(trial_id)
            raise TrialIDNotFoundError(f"Unable to find trial id: {trial_id}. {self._trial_ids_hint(last)}")
        raise TrialIDNotFoundError(f"Trial id must be integer, given: {trial_id!r}{type(trial_id)}. "
                                   f"{self._trial_ids_hint(self._reader.last_trial_id())}")

    def _trial_ids_hint(self, last: int) -> str:
        if last == 0:
            return f"Experiment {self.id!r} has no trials yet (last trial id: 0)."
        return f"Trial ids of experiment {self.id!r} are ints from 1 to the last trial id, {last}."

    def _trial_record(self, trial_id: Any) -> dict[str, Any]:
        trial_id = self._check_trial_id(trial_id)
        records = self._reader.load_trials([trial_id])
        if not records:
            raise TrialIDNotFoundError(f"Unable to find trial id: {trial_id} (no record was stored for it). "
                                       f"{self._trial_ids_hint(self._reader.last_trial_id())}")
        return records[0]

    def _code_document(self, digest: str | None) -> dict[str, str]:
        document = self._reader.load_document("code", digest) if digest else None
        return dict((document or {}).get("steps") or {})

    def choose_seed(self, seed: int | None) -> int:
        """``seed``, else the experiment's default seed, else a generated one (logged either way)."""
        if seed is None:
            seed = self.seed
        if seed is None:
            seed = generate_seed()
            logger.info("Random seed is not provided, initialized with generated seed: %d", seed)
        else:
            seed = validate_seed(seed)
            logger.info("Random seed is initialized with given seed: %d", seed)
        return seed

    def _environment_digest(self) -> str:
        digest, sections = environment.current()
        if digest not in self._stored_envs:
            self._backend.save_document("environment", digest, sections)
            self._stored_envs.add(digest)
        return digest

    def _after_trial_started(self, trial_id: int, code_digest: str, env_digest: str) -> None:
        """Warn about code and environment changes since the previous trial."""
        with self._lock:
            previous = self._previous
            if previous is None:
                records = self._backend.load_trials([trial_id - 1]) if trial_id > 1 else []
                previous = (trial_id - 1, records[0].get("code"), records[0].get("environment")) if records else (0, None, None)
            self._previous = (trial_id, code_digest, env_digest)
        _, prev_code, prev_env = previous
        if prev_code != code_digest:
            self._code.warn_changes(self._code_document(prev_code) if prev_code else None)
        elif self._code.baseline is None:
            self._code.baseline = dict(self._code.steps)
        if prev_env and prev_env != env_digest:
            before = self._backend.load_document("environment", prev_env)
            if before is not None:  # compare the stored documents: exactly what each trial references
                environment.warn_changes(before, self._backend.load_document("environment", env_digest) or {})


def _restore(experiment_id: str, backend: Backend, seed: int | None, parameters: ParameterStore, cache: bool,
             cache_limit: int | None) -> Experiment:
    ex = object.__new__(Experiment)  # a worker's copy: never the process-wide instance
    ex.id, ex._backend, ex.seed, ex.cache, ex.cache_limit = experiment_id, backend, seed, cache, cache_limit
    ex._init_state()
    ex._parameters = parameters
    ex._initialised = True
    return ex


__all__ = ["MAX_ID_LENGTH", "Experiment", "validate_id", "validate_seed"]
