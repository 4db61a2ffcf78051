"""Where the Redis server is: URIs and connection pools, display, pickling, errors.

A backend must pickle (Dask ships it to workers) but a ``redis.ConnectionPool``
holds sockets and locks. :class:`ConnectionSpec` is the picklable description a
pool is rebuilt from: the URI the user gave, or the connection class and keyword
arguments of the pool the user gave. ``redis`` is imported only when a pool is
built or an error is translated, so listing plugins stays fast.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from daskperiment.errors import BackendError, BackendUnavailableError

if TYPE_CHECKING:
    import redis

logger = logging.getLogger("daskperiment.redis")

SCHEMES = ("redis", "rediss", "unix")

#: Applied to pools built from a URI unless the URI sets them (``?socket_timeout=…``): an
#: unreachable host fails within 5 s instead of the OS's minutes, a frozen server or silent
#: network fails a call after 8 s instead of hanging it (no command of ours blocks on the
#: server, and the largest takes well under a second), and TCP keepalive notices a peer that
#: vanished without closing the connection. A refused connection (server down) fails at once.
URI_DEFAULTS = {"socket_connect_timeout": 5.0, "socket_timeout": 8.0}
TCP_DEFAULTS = {**URI_DEFAULTS, "socket_keepalive": True}


def display_uri(uri: str) -> str:
    """``uri`` with the password masked, in the userinfo and in a ``?password=`` query.

    The host is kept as written (core's ``mask_uri`` lowercases it and drops IPv6 brackets).
    """
    parts = urlsplit(uri)
    netloc, query = parts.netloc, parts.query
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    if "password" in query:
        query = urlencode([(k, "***" if k == "password" else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe="*")
    # assembled by hand: urlunsplit drops the empty host of unix:///path
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "") + \
        (f"#{parts.fragment}" if parts.fragment else "")


def _pool_uri(connection_class: type, kwargs: dict[str, Any]) -> str:
    """A display URI for a pool given as an object (password masked)."""
    import redis

    user = kwargs.get("username") or ""
    auth = f"{quote(user, safe='')}:***@" if kwargs.get("password") else (f"{quote(user, safe='')}@" if user else "")
    db = kwargs.get("db") or 0
    if issubclass(connection_class, redis.UnixDomainSocketConnection):
        return f"unix://{auth}{kwargs.get('path')}?db={db}"
    scheme = "rediss" if issubclass(connection_class, redis.SSLConnection) else "redis"
    return f"{scheme}://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def _picklable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The connection arguments worth shipping: runtime objects a new pool recreates
    (registries, notification handlers, callbacks) do not pickle and are dropped."""
    kept = {}
    for key, value in kwargs.items():
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - any failure means "not shippable"
            logger.debug("connection argument %r is not picklable; a rebuilt pool uses its default", key)
            continue
        kept[key] = value
    kept["decode_responses"] = False  # metrics and persisted results are raw bytes
    return kept


@dataclass(frozen=True)
class ConnectionSpec:
    """What a pool is (re)built from: a URI, or a pool's class and connection arguments."""

    uri: str | None = None
    connection_class: type | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_connections: int | None = None
    display: str = ""

    @property
    def password(self) -> str | None:
        """The secret to keep out of messages."""
        if self.uri is None:
            return self.kwargs.get("password")
        parts = urlsplit(self.uri)
        if parts.password:
            return unquote(parts.password)
        return dict(parse_qsl(parts.query)).get("password")

    @classmethod
    def from_uri(cls, uri: str) -> ConnectionSpec:
        scheme = urlsplit(uri).scheme.lower()
        if scheme not in SCHEMES:
            raise BackendError(f"RedisBackend needs a redis://, rediss:// or unix:// URI, got {display_uri(uri)!r}.")
        return cls(uri=uri, display=display_uri(uri))

    @classmethod
    def from_pool(cls, pool: redis.ConnectionPool) -> ConnectionSpec:
        kwargs = _picklable(pool.connection_kwargs)
        return cls(connection_class=pool.connection_class, kwargs=kwargs, max_connections=pool.max_connections,
                   display=_pool_uri(pool.connection_class, kwargs))

    def build_pool(self) -> redis.ConnectionPool:
        """A new pool (connections open lazily, on first command)."""
        import redis

        if self.uri is not None:
            try:
                defaults = URI_DEFAULTS if urlsplit(self.uri).scheme.lower() == "unix" else TCP_DEFAULTS
                return redis.ConnectionPool.from_url(self.uri, **defaults)
            except ValueError as exc:
                raise BackendError(f"RedisBackend({self.display!r}): invalid Redis URI ({exc}). Expected "
                                   "redis://[[user]:password@]host[:port][/db], rediss://… for TLS, or "
                                   "unix://[[user]:password@]/path/to/redis.sock[?db=N].") from exc
        return redis.ConnectionPool(connection_class=self.connection_class, max_connections=self.max_connections,
                                    **self.kwargs)


def translate_error(exc: Exception, display: str, action: str, secret: str | None) -> Exception | None:
    """The daskperiment error for a redis-py exception (``None`` when ``exc`` is not one).

    Messages name the URI (password masked), the cause and the fix. ``secret`` is
    scrubbed from the cause in case the client library ever echoes it.
    """
    import redis.exceptions as rex

    if not isinstance(exc, rex.RedisError):
        return None
    cause = f"{type(exc).__name__}: {exc}"
    if secret:
        cause = cause.replace(secret, "***")
    where = f"RedisBackend({display!r})"
    text = str(exc).upper()
    if isinstance(exc, rex.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return BackendUnavailableError(
            f"{where}: authentication failed while {action} ({cause}). Check the user name and password: "
            "redis://[user]:password@host:port/db (URL-encode special characters), or the password of "
            "the connection pool you passed.")
    if isinstance(exc, (rex.ConnectionError, rex.TimeoutError)):
        return BackendUnavailableError(
            f"{where}: cannot reach the Redis server while {action} ({cause}). Check that redis-server is "
            "running at that address and reachable from this machine. Each write is a single transaction, "
            "so nothing already stored was damaged; the next call reconnects once the server is back.")
    return BackendError(f"{where}: the Redis server refused {action} ({cause}).")
