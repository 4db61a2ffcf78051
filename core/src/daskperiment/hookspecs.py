"""The hooks a daskperiment plugin can implement.

Every plugin is a module (or object) whose functions are decorated with
:data:`daskperiment.hookimpl` and whose distribution declares an entry point in
the ``daskperiment`` group. Built-in plugins are registered exactly the same way.

Implementations may accept a subset of a spec's arguments (pluggy "opt-in
arguments"), so specs can grow new arguments without breaking plugins.
Specs marked ``firstresult`` stop at the first non-``None`` result.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

import pluggy

from .backends import Backend
from .records import StepRun, TrialOutcome

PROJECT_NAME = "daskperiment"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------
# storage backends
# --------------------------------------------------------------------------


class RegisterBackend(Protocol):
    """The ``register`` callback given to :func:`register_backends`."""

    def __call__(self, scheme: str, backend_cls: type[Backend], extra: str | None = None) -> None: ...


@hookspec
def register_backends(register: RegisterBackend) -> None:
    """Register storage backend classes by URI scheme.

    Call ``register(scheme, backend_cls, extra=None)`` once per scheme, e.g.
    ``register("redis", RedisBackend, extra="redis")``. The registry is used to
    dispatch URI strings, to list what is installed, and to word "unknown backend"
    errors (``extra`` names the ``pip install 'daskperiment[extra]'`` that brings
    the plugin; leave it ``None`` for a third-party plugin).

    :param register: :meth:`daskperiment.backends.BackendRegistry.register` of the
        registry being built.
    """


@hookspec(firstresult=True)
def make_backend(experiment_id: str, target: Any) -> Backend | None:
    """Build a backend for ``experiment_id`` from what the user passed.

    ``target`` is the ``backend=`` argument of :class:`~daskperiment.Experiment`:
    ``None`` (the default local backend), a URI string, a :class:`pathlib.Path`
    or a client object such as ``redis.ConnectionPool``. Return ``None`` when the
    target is not yours. URI strings whose scheme was registered with
    :func:`register_backends` are handled by the core fallback, so implement this
    hook only for objects.

    Stops at first non-None result, see firstresult.
    """


# --------------------------------------------------------------------------
# environment collection
# --------------------------------------------------------------------------


@hookspec
def collect_environment() -> Mapping[str, Any] | None:
    """Describe one part of the environment a trial runs in.

    Called once per process (results are cached and stored once per distinct
    content). Return ``{section_name: value}`` where each value is plain data
    (JSON-able dict/list/scalars) or text. Never raise for a missing tool:
    record the failure in the section instead.
    """


# --------------------------------------------------------------------------
# purity checks
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def hash_value(value: Any) -> str | None:
    """Return a deterministic hash (hex string) of ``value`` for the purity check.

    The hash must be stable across processes and runs (no ``id()``, no salted
    ``hash()`` of strings). Implement this to teach daskperiment a new type;
    return ``None`` for types you do not handle. The core fallback uses
    :func:`dask.base.tokenize`.

    Stops at first non-None result, see firstresult.
    """


# --------------------------------------------------------------------------
# random seeding
# --------------------------------------------------------------------------


@hookspec
def seed_random_state(seed: int) -> None:
    """Seed one random number generator (``random``, ``numpy``, ``torch`` …).

    Every implementation runs, in the driver before a trial and in the worker
    before each step, so a trial computed on a cluster gives the same result as
    the same trial computed locally. Skip quietly when your library is not
    importable.
    """


# --------------------------------------------------------------------------
# trial lifecycle (for user customisation: notifications, extra logging …)
# --------------------------------------------------------------------------


@hookspec
def trial_started(experiment_id: str, trial_id: int, parameters: Mapping[str, Any], seed: int) -> None:
    """Called in the driver once the trial id is allocated, before any step runs."""


@hookspec
def step_finished(experiment_id: str, trial_id: int, step: StepRun) -> None:
    """Called in the process that ran the step, after it returned or raised."""


@hookspec
def trial_finished(experiment_id: str, trial_id: int, record: TrialOutcome) -> None:
    """Called in the driver after the trial's outcome has been stored."""


# --------------------------------------------------------------------------
# dashboard
# --------------------------------------------------------------------------


@hookspec
def register_routes(register: Callable[..., None]) -> None:
    """Add pages or JSON endpoints to the dashboard (datasette's ``register_routes``).

    Called once when a dashboard starts. Call ``register(pattern, handler)`` per
    route: ``pattern`` is a regular expression matched against the whole URL path
    (its named groups reach the handler's ``get`` as keyword arguments) and
    ``handler`` a subclass of :class:`daskperiment.dashboard.Page`, a tornado
    ``RequestHandler`` that answers GET and HEAD only, sends the dashboard's
    security headers (strict Content-Security-Policy) and renders autoescaped
    Jinja2 templates. The built-in pages are registered through this hook; a
    pattern registered twice is an error naming both plugins.

    :param register: callback owned by the dashboard's route table.
    """
