"""Map URI schemes to backend classes, and turn ``backend=`` arguments into backends."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import UnknownBackendError
from .base import Backend

#: Schemes of plugins we publish, so an error can say which extra installs them
#: (fsspec's ``known_implementations`` idea).
KNOWN_EXTRAS = {
    "redis": "redis", "rediss": "redis", "unix": "redis",
    "mongodb": "mongo", "mongodb+srv": "mongo",
    "sqlite": "sql", "postgresql": "sql", "postgres": "sql",
}


def mask_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for repr, logs and errors)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class BackendRegistry:
    """Scheme → backend class, filled by the ``register_backends`` hook."""

    def __init__(self) -> None:
        self._classes: dict[str, tuple[type[Backend], str]] = {}

    def register(self, scheme: str, backend_cls: type[Backend], plugin: str = "?") -> None:
        """Add ``scheme``; two plugins claiming one scheme is an error naming both."""
        scheme = scheme.lower()
        if scheme in self._classes and self._classes[scheme][0] is not backend_cls:
            other_cls, other_plugin = self._classes[scheme]
            raise UnknownBackendError(
                f"Backend scheme {scheme!r} is registered twice: by plugin {other_plugin!r} "
                f"({other_cls.__qualname__}) and by plugin {plugin!r} ({backend_cls.__qualname__}). "
                "Block one with DASKPERIMENT_DISABLE_PLUGINS=<name>.")
        self._classes[scheme] = (backend_cls, plugin)

    @property
    def schemes(self) -> list[str]:
        return sorted(self._classes)

    def get(self, scheme: str) -> type[Backend] | None:
        entry = self._classes.get(scheme.lower())
        return entry[0] if entry else None

    def unknown(self, target: Any) -> UnknownBackendError:
        """The error for a target nobody handles: what is installed and what to install."""
        installed = ", ".join(self.schemes) or "none"
        if isinstance(target, str):
            scheme = urlsplit(target).scheme.lower()
            shown = mask_uri(target)
            if not scheme:
                return UnknownBackendError(
                    f"Unknown backend {shown!r}: expected a URI such as 'redis://host:6379/0', "
                    f"or a pathlib.Path for a local directory. Installed schemes: {installed}.")
            hint = KNOWN_EXTRAS.get(scheme)
            fix = (f"{scheme}:// needs pip install 'daskperiment[{hint}]'." if hint
                   else "Install a plugin that registers it, or use one of the installed schemes.")
            return UnknownBackendError(
                f"Unknown backend URI {shown!r}: no installed plugin handles scheme {scheme!r}. "
                f"Installed schemes: {installed}. {fix} (A blocked plugin may also cause this: "
                "check DASKPERIMENT_DISABLE_PLUGINS.)")
        return UnknownBackendError(
            f"Unknown backend object {type(target).__module__}.{type(target).__qualname__}: no installed "
            f"plugin accepts it. Pass a URI string or a pathlib.Path; installed schemes: {installed}. "
            "redis.ConnectionPool needs pip install 'daskperiment[redis]'; pymongo Database needs "
            "pip install 'daskperiment[mongo]'.")


_registry: BackendRegistry | None = None
_lock = threading.Lock()


def get_backend_registry() -> BackendRegistry:
    """The registry built from the current plugin manager (cached)."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                from ..plugins import get_plugin_manager

                pm = get_plugin_manager()
                registry = BackendRegistry()
                for impl in pm.hook.register_backends.get_hookimpls():
                    impl.function(register=lambda scheme, cls, _p=impl.plugin_name: registry.register(scheme, cls, _p))
                _registry = registry
    return _registry


def reset_registry() -> None:
    global _registry
    with _lock:
        _registry = None


def make_backend(experiment_id: str, target: Any = None) -> Backend:
    """Turn the ``backend=`` argument of an Experiment into a :class:`Backend`."""
    if isinstance(target, Backend):
        return target
    from ..plugins import get_plugin_manager

    backend = get_plugin_manager().hook.make_backend(experiment_id=experiment_id, target=target)
    if backend is None:
        raise get_backend_registry().unknown(target)
    return backend
