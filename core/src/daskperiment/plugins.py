"""Find, load and call daskperiment plugins.

Load order (documented in docs/plugins.md, modelled on pytest and tox):

1. names in ``DASKPERIMENT_DISABLE_PLUGINS=a,b`` are blocked;
2. unless ``DASKPERIMENT_DISABLE_PLUGIN_AUTOLOAD`` is set, every entry point in the
   ``daskperiment`` group is loaded; when ``DASKPERIMENT_PLUGINS=a,b`` is set, only
   those entry points are;
3. built-in plugins in :data:`DEFAULT_PLUGINS` not yet registered (a checkout used
   without installed metadata) are registered;
4. the essential core plugin is registered (it cannot be blocked);
5. ``check_pending()`` rejects hook implementations that match no spec;
6. ``DASKPERIMENT_TRACE_PLUGINS`` routes pluggy tracing into ``logging``.

:class:`PluginHost` is the typed facade over pluggy's manager and the only place
in daskperiment that calls hooks (tox's ``Plugin`` facade, kedro's injected hook
manager): the rest of the package asks the host, never ``pm.hook`` directly.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .backends import Backend, BackendRegistry
from .errors import UsageError
from .records import StepRun

__all__ = [
    "DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "ESSENTIAL_PLUGINS", "Collector", "PluginHost", "get_backend_registry",
    "get_plugin_host", "get_plugin_manager", "list_plugins", "make_backend", "make_plugin_manager",
    "set_plugin_manager",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
ESSENTIAL_PLUGINS = {"core": "daskperiment.builtin_hooks"}
#: Built-in plugins shipped as their own distributions; registered from here only
#: when their entry point was not found (running from a source checkout).
DEFAULT_PLUGINS: dict[str, str] = {"local": "daskperiment_local"}

ENV_DISABLE_AUTOLOAD = "DASKPERIMENT_DISABLE_PLUGIN_AUTOLOAD"
ENV_DISABLE = "DASKPERIMENT_DISABLE_PLUGINS"
ENV_ONLY = "DASKPERIMENT_PLUGINS"
ENV_TRACE = "DASKPERIMENT_TRACE_PLUGINS"

#: Plugin name → the distribution its entry point came from, per manager. Kept here
#: (weakly, so a dropped manager is forgotten) rather than as an attribute on pluggy's object.
_distributions: weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, metadata.Distribution | None]] = \
    weakref.WeakKeyDictionary()
#: Managers whose hook calls are traced (``DASKPERIMENT_TRACE_PLUGINS``): every call is made, even to no implementation.
_traced: weakref.WeakSet[pluggy.PluginManager] = weakref.WeakSet()


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _import_plugin(name: str, module_name: str, dist: str | None = None) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # a broken plugin must say which one it is
        where = f" ({dist})" if dist else ""
        raise ImportError(f"Error importing daskperiment plugin {name!r}{where}: {exc}") from exc


def make_plugin_manager(*, autoload: bool | None = None, blocked: tuple[str, ...] | None = None,
                        only: tuple[str, ...] | None = None) -> pluggy.PluginManager:
    """Build a fresh plugin manager; arguments default to the environment variables.

    A factory (rather than only a global) keeps tests, CLI and Dask workers isolated.
    """
    if autoload is None:
        autoload = not os.environ.get(ENV_DISABLE_AUTOLOAD)
    blocked = tuple(_split(os.environ.get(ENV_DISABLE))) if blocked is None else blocked
    if only is None and os.environ.get(ENV_ONLY) is not None:
        only = tuple(_split(os.environ.get(ENV_ONLY)))
    for name in blocked:
        if name in ESSENTIAL_PLUGINS:
            raise UsageError(f"plugin {name!r} cannot be disabled: it is essential to daskperiment "
                             f"(remove it from {ENV_DISABLE})")

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)

    dists: dict[str, metadata.Distribution | None] = {}
    _distributions[pm] = dists
    if autoload:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            if only is not None and ep.name not in only:
                continue
            dist = ep.dist
            label = f"{dist.metadata['Name']} {dist.version}" if dist is not None else None
            try:
                plugin = ep.load()
            except Exception as exc:
                raise ImportError(f"Error importing daskperiment plugin {ep.name!r} ({label}): {exc}") from exc
            pm.register(plugin, name=ep.name)
            dists[ep.name] = dist

    for name, module_name in DEFAULT_PLUGINS.items():
        if pm.get_plugin(name) is None and not pm.is_blocked(name) and (only is None or name in only):
            try:
                pm.register(_import_plugin(name, module_name), name=name)
            except ImportError:
                logger.debug("built-in plugin %s is not installed", name)
    for name, module_name in ESSENTIAL_PLUGINS.items():
        if pm.get_plugin(name) is None:
            pm.register(_import_plugin(name, module_name), name=name)

    pm.check_pending()
    if os.environ.get(ENV_TRACE):
        pm.trace.root.setwriter(logger.debug)
        pm.enable_tracing()
        _traced.add(pm)
    return pm


@dataclass(frozen=True)
class Collector:
    """One plugin's ``collect_environment`` implementation, callable on its own through pluggy."""

    name: str
    plugin: Any
    collect: Callable[[], Mapping[str, Any] | None]


class PluginHost:
    """The hooks daskperiment calls, typed, over one pluggy manager.

    Cheap to build; the backend registry and the collector list are built on first
    use and rebuilt when plugins are registered or unregistered afterwards.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._lock = threading.Lock()
        self._registry: tuple[int, BackendRegistry] | None = None
        self._collectors: tuple[int, list[Collector]] | None = None
        self._tracing = pm in _traced

    def _generation(self) -> int:
        """Changes whenever a plugin is registered or unregistered (cache key)."""
        return hash(tuple(id(plugin) for _, plugin in self.pm.list_name_plugin()))

    # ---- storage backends -------------------------------------------------------------------
    @property
    def backends(self) -> BackendRegistry:
        """Scheme → backend class, from one ``register_backends`` hook call."""
        generation = self._generation()
        cached = self._registry
        if cached is None or cached[0] != generation:
            with self._lock:
                registry = BackendRegistry()
                for name, _, call in self._each_plugin("register_backends"):
                    call(register=registry.callback(name))
                cached = self._registry = (generation, registry)
        return cached[1]

    def make_backend(self, experiment_id: str, target: Any = None) -> Backend:
        """Turn the ``backend=`` argument of an Experiment into a :class:`Backend`.

        Plugins' ``make_backend`` implementations go first (objects, paths, ``None``);
        a URI string nobody claimed is dispatched by scheme through the registry.
        """
        if isinstance(target, Backend):
            return target
        backend: Backend | None = self.pm.hook.make_backend(experiment_id=experiment_id, target=target)
        if backend is not None:
            return backend
        if isinstance(target, str) and "://" in target:
            return self.backends.from_uri(experiment_id, target)
        raise self.backends.unknown(target)

    # ---- purity and seeding ---------------------------------------------------------------
    def hash_value(self, value: Any) -> str | None:
        digest: str | None = self.pm.hook.hash_value(value=value)
        return digest

    def seed_random_state(self, seed: int) -> None:
        self.pm.hook.seed_random_state(seed=seed)

    # ---- environment ------------------------------------------------------------------------
    def collectors(self) -> list[Collector]:
        """Each plugin's collector on its own (``subset_hook_caller``), in hook call order, so the
        environment module can run them in parallel with a deadline and re-run only stale ones."""
        generation = self._generation()
        cached = self._collectors
        if cached is None or cached[0] != generation:
            collectors = [Collector(name, plugin, _single(call))
                          for name, plugin, call in self._each_plugin("collect_environment")]
            cached = self._collectors = (generation, collectors)
        return cached[1]

    def _each_plugin(self, hook_name: str) -> list[tuple[str, Any, Callable[..., Any]]]:
        """``(plugin name, plugin, caller)`` per implementation of a hook, in call order; each
        caller is pluggy's own hook caller restricted to that plugin, so a host can tell plugins
        apart (whose backend, whose environment section) and still call through pluggy."""
        impls = list(reversed(getattr(self.pm.hook, hook_name).get_hookimpls()))
        callers: list[tuple[str, Any, Callable[..., Any]]] = []
        for impl in impls:
            others = [other.plugin for other in impls if other.plugin is not impl.plugin]
            callers.append((impl.plugin_name, impl.plugin, self.pm.subset_hook_caller(hook_name, others)))
        return callers

    # ---- lifecycle ----------------------------------------------------------------------------
    # Called on every trial and step, and usually implemented by no plugin: a call with no
    # implementation does nothing, so it is not made (pluggy's argument checks and call loop
    # cost microseconds on every step) unless hook calls are traced, where it shows in the log.
    def _listened(self, caller: Any) -> bool:
        return self._tracing or bool(caller.get_hookimpls())

    def trial_started(self, experiment_id: str, trial_id: int, parameters: Mapping[str, Any], seed: int) -> None:
        caller = self.pm.hook.trial_started
        if self._listened(caller):
            caller(experiment_id=experiment_id, trial_id=trial_id, parameters=parameters, seed=seed)

    def step_finished(self, experiment_id: str, trial_id: int, step: StepRun) -> None:
        caller = self.pm.hook.step_finished
        if self._listened(caller):
            caller(experiment_id=experiment_id, trial_id=trial_id, step=step)

    def trial_finished(self, experiment_id: str, trial_id: int, record: Mapping[str, Any]) -> None:
        caller = self.pm.hook.trial_finished
        if self._listened(caller):
            caller(experiment_id=experiment_id, trial_id=trial_id, record=record)

    # ---- dashboard --------------------------------------------------------------------------------
    def register_routes(self, register: Callable[[str, str, Any], None]) -> None:
        """Every plugin's ``register_routes``; each route reaches ``register(plugin, pattern, handler)``
        so the dashboard can name both plugins of a clash."""
        for name, _, call in self._each_plugin("register_routes"):
            call(register=lambda pattern, handler, _name=name: register(_name, pattern, handler))

    # ---- listing --------------------------------------------------------------------------------
    def list_plugins(self) -> list[dict[str, Any]]:
        """Name, distribution, version and implemented hooks of every registered plugin."""
        dists = _distributions.get(self.pm, {})
        rows = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda item: item[0]):
            if plugin is None:
                continue
            dist = dists.get(name)
            if dist is None:
                dist_name, version = _dist_of(plugin)
            else:
                dist_name, version = dist.metadata["Name"], dist.version
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            rows.append({"name": name, "module": getattr(plugin, "__name__", repr(plugin)),
                         "distribution": dist_name, "version": version, "hooks": hooks})
        return rows


def _single(caller: Callable[..., list[Any]]) -> Callable[[], Mapping[str, Any] | None]:
    def collect() -> Mapping[str, Any] | None:
        results = caller()
        return results[0] if results else None

    return collect


def _dist_of(plugin: Any) -> tuple[str | None, str | None]:
    top = getattr(plugin, "__name__", "").split(".")[0]
    for dist_name in metadata.packages_distributions().get(top, []):
        try:
            return dist_name, metadata.version(dist_name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


_lock = threading.Lock()
_host: PluginHost | None = None


def get_plugin_host() -> PluginHost:
    """The process-wide host, built lazily on first use (not at import time)."""
    global _host
    host = _host
    if host is None:
        with _lock:
            if _host is None:
                _host = PluginHost(make_plugin_manager())
            host = _host
    return host


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager (to register plugins at run time, or in tests)."""
    return get_plugin_host().pm


def set_plugin_manager(pm: pluggy.PluginManager | None) -> None:
    """Replace the process-wide manager (``None`` rebuilds it lazily); for tests."""
    global _host
    with _lock:
        _host = None if pm is None else PluginHost(pm)


def list_plugins(pm: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """Name, distribution, version and implemented hooks of every registered plugin."""
    return (get_plugin_host() if pm is None else PluginHost(pm)).list_plugins()


def get_backend_registry() -> BackendRegistry:
    """The scheme registry of the process-wide plugins."""
    return get_plugin_host().backends


def make_backend(experiment_id: str, target: Any = None) -> Backend:
    """Turn a ``backend=`` argument into a :class:`Backend` with the process-wide plugins."""
    return get_plugin_host().make_backend(experiment_id, target)

