"""Find, load and list daskperiment plugins.

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
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import UsageError

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

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None


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

    pm._daskperiment_dists = {}  # type: ignore[attr-defined]
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
            pm._daskperiment_dists[ep.name] = dist  # type: ignore[attr-defined]

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
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built lazily on first use (not at import time)."""
    global _manager
    if _manager is None:
        with _lock:
            if _manager is None:
                _manager = make_plugin_manager()
    return _manager


def set_plugin_manager(pm: pluggy.PluginManager | None) -> None:
    """Replace the process-wide manager (``None`` rebuilds it lazily); for tests."""
    global _manager
    with _lock:
        _manager = pm
    from .backends.registry import reset_registry

    reset_registry()


def list_plugins(pm: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """Name, distribution, version and implemented hooks of every registered plugin."""
    pm = pm or get_plugin_manager()
    dists = getattr(pm, "_daskperiment_dists", {})
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        dist = dists.get(name)
        if dist is None:
            dist_name, version = _dist_of(plugin)
        else:
            dist_name, version = dist.metadata["Name"], dist.version
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, "module": getattr(plugin, "__name__", repr(plugin)),
                     "distribution": dist_name, "version": version, "hooks": hooks})
    return rows


def _dist_of(plugin: Any) -> tuple[str | None, str | None]:
    top = getattr(plugin, "__name__", "").split(".")[0]
    for dist_name in metadata.packages_distributions().get(top, []):
        try:
            return dist_name, metadata.version(dist_name)
        except metadata.PackageNotFoundError:
            continue
    return None, None
