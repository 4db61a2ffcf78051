"""Map URI schemes to backend classes.

A plain object with no global state and no knowledge of plugins: the plugin
host (:mod:`daskperiment.plugins`) builds one by calling the
``register_backends`` hook with :meth:`BackendRegistry.register` as the callback.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..errors import UnknownBackendError
from .base import Backend

__all__ = ["KNOWN_EXTRAS", "BackendRegistry", "Registration", "backend_argument", "mask_uri"]

#: Schemes of plugins we publish, so an error can say which extra installs them
#: (fsspec's ``known_implementations`` idea). Every value is an extra of the
#: ``daskperiment`` distribution (a test checks it against the package metadata).
KNOWN_EXTRAS = {
    "redis": "redis", "rediss": "redis", "unix": "redis",
    "mongodb": "mongo", "mongodb+srv": "mongo",
    "sqlite": "sql", "postgresql": "sql", "postgres": "sql", "postgresql+psycopg": "sql",
    "mysql": "sql", "mysql+pymysql": "sql", "mariadb": "sql", "mariadb+pymysql": "sql",
}


def backend_argument(value: str | None) -> Any:
    """A ``--backend`` command-line value as a ``backend=`` argument: a URI (``scheme://…``) stays a
    string, anything else is a directory path; ``None`` (not given) means the default."""
    if value is None:
        return None
    return value if "://" in value else pathlib.Path(value)


def mask_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for repr, logs and errors).

    Works on the text of the authority rather than on parsed host names, so IPv6
    brackets, upper case and multi-host lists (``mongodb://u:pw@h1:1,h2:2/db``)
    come out as written.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at:
        return uri
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return uri
    return parts._replace(netloc=f"{user}:***@{hostinfo}").geturl()


class Registration(NamedTuple):
    """One scheme's backend class, the plugin that registered it, and the extra that installs it."""

    backend_cls: type[Backend]
    plugin: str
    extra: str | None


class BackendRegistry:
    """Scheme → backend class, filled through the ``register_backends`` hook."""

    def __init__(self) -> None:
        self._entries: dict[str, Registration] = {}

    def register(self, scheme: str, backend_cls: type[Backend], plugin: str = "?", extra: str | None = None) -> None:
        """Add ``scheme`` (case-insensitive) for ``plugin``.

        :param extra: the ``pip install 'daskperiment[extra]'`` name that installs the plugin,
            shown in errors; ``None`` for third-party plugins.

        Two plugins claiming one scheme with different classes is an error naming both.
        """
        scheme = scheme.lower()
        existing = self._entries.get(scheme)
        if existing is not None and existing.backend_cls is not backend_cls:
            raise UnknownBackendError(
                f"Backend scheme {scheme!r} is registered twice: by plugin {existing.plugin!r} "
                f"({existing.backend_cls.__qualname__}) and by plugin {plugin!r} ({backend_cls.__qualname__}). "
                "Block one with DASKPERIMENT_DISABLE_PLUGINS=<name>.")
        self._entries[scheme] = Registration(backend_cls, plugin, extra)

    def callback(self, plugin: str) -> Callable[..., None]:
        """The ``register(scheme, backend_cls, extra=None)`` callback given to ``plugin``'s hook."""
        def register(scheme: str, backend_cls: type[Backend], extra: str | None = None) -> None:
            self.register(scheme, backend_cls, plugin, extra=extra)

        return register

    @property
    def schemes(self) -> list[str]:
        return sorted(self._entries)

    def get(self, scheme: str) -> type[Backend] | None:
        entry = self._entries.get(scheme.lower())
        return entry.backend_cls if entry else None

    def extra(self, scheme: str) -> str | None:
        """The extra that installs ``scheme``: as registered, else from :data:`KNOWN_EXTRAS`."""
        entry = self._entries.get(scheme.lower())
        if entry is not None and entry.extra:
            return entry.extra
        return KNOWN_EXTRAS.get(scheme.lower())

    def from_uri(self, experiment_id: str, uri: str) -> Backend:
        """Build the backend registered for ``uri``'s scheme, or raise :meth:`unknown`'s error."""
        try:
            scheme = urlsplit(uri).scheme
        except ValueError:
            scheme = ""
        backend_cls = self.get(scheme) if scheme else None
        if backend_cls is None:
            raise self.unknown(uri)
        return backend_cls.from_uri(experiment_id, uri)

    def unknown(self, target: Any) -> UnknownBackendError:
        """The error for a target nobody handles: what is installed and what to install."""
        installed = ", ".join(self.schemes) or "none"
        if isinstance(target, str):
            try:
                scheme = urlsplit(target).scheme.lower()
            except ValueError:
                scheme = target.partition("://")[0].lower() if "://" in target else ""
            shown = mask_uri(target)
            if not scheme:
                return UnknownBackendError(
                    f"Unknown backend {shown!r}: expected a URI such as 'redis://host:6379/0', "
                    f"or a pathlib.Path for a local directory. Installed schemes: {installed}.")
            hint = self.extra(scheme)
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
            "pip install 'daskperiment[mongo]'; sqlalchemy.Engine needs pip install 'daskperiment[sql]'.")
