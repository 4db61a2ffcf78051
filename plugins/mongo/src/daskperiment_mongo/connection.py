"""Where a MongoBackend's data lives, and how to reach it from any process.

A :class:`Target` is the picklable recipe for a ``MongoClient`` (its constructor
arguments) plus the database name and the URI to show. Dask ships backends to
worker processes and ``MongoClient`` is not fork-safe, so each process builds its
own client from the recipe instead of inheriting one.

This module imports nothing from pymongo at import time: the plugin is loaded in
every daskperiment process, most of which never talk to MongoDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from daskperiment.errors import BackendError

if TYPE_CHECKING:
    pass

#: How long an operation waits for an unreachable server before it fails (pymongo's
#: default of 30 s would leave a trial hanging); ``serverSelectionTimeoutMS`` in the URI wins.
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5_000
#: How long a call waits for an answer (pymongo's default is forever: a frozen server would
#: block the trial) and for a connection; the URI's ``socketTimeoutMS``/``connectTimeoutMS`` win.
#: No call of ours takes long on a healthy server (each reads or writes bounded batches).
DEFAULT_TIMEOUTS_MS = {"socketTimeoutMS": 8_000, "connectTimeoutMS": 5_000}

SCHEMES = ("mongodb", "mongodb+srv")

NAME_THE_DATABASE = ("name the database: pass a URI ending in the database name, e.g. "
                     "'mongodb://localhost:27017/my_db', or a Database such as "
                     "pymongo.MongoClient(...).my_db (or client['my_db'])")
CLIENT_WITHOUT_DATABASE = f"A MongoClient does not say which database to use; {NAME_THE_DATABASE}."


def mask_password(uri: str) -> str:
    """``uri`` with any password replaced by ``***``.

    Unlike :func:`daskperiment.backends.registry.mask_uri`, this never parses the
    host part, so multi-host (``h1:1,h2:2``) and IPv6 netlocs are kept intact.
    """
    parts = urlsplit(uri)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return uri
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hosts}"))


@dataclass(frozen=True)
class Target:
    """One MongoDB database: constructor arguments of its client, its name, its display URI."""

    client_args: dict[str, Any] = field(repr=False)
    database: str
    display: str

    def connect(self) -> Any:
        """A new ``MongoClient`` (it connects in the background, on first use)."""
        from pymongo import MongoClient

        return MongoClient(**self.client_args)


def target_from_uri(uri: str, server_selection_timeout_ms: int | None = None) -> Target:
    """Validate a ``mongodb://`` / ``mongodb+srv://`` URI that names its database.

    The URI is not resolved here (``mongodb+srv`` needs DNS): that happens on first use.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES:
        raise BackendError(f"MongoBackend needs a mongodb:// or mongodb+srv:// URI, got {mask_password(uri)!r}.")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise BackendError(f"The MongoDB URI {mask_password(uri)!r} names no database; {NAME_THE_DATABASE}.")
    args: dict[str, Any] = {"host": uri}
    options = {key.lower() for key, _ in parse_qsl(parts.query)}
    if server_selection_timeout_ms is not None:
        args["serverSelectionTimeoutMS"] = server_selection_timeout_ms
    elif "serverselectiontimeoutms" not in options:
        args["serverSelectionTimeoutMS"] = DEFAULT_SERVER_SELECTION_TIMEOUT_MS
    for option, default in DEFAULT_TIMEOUTS_MS.items():
        if option.lower() not in options:
            args[option] = default
    return Target(args, database, mask_password(uri))


def _client_init_args(client: Any) -> dict[str, Any]:
    """The arguments ``client`` was built with, so another process can build its twin.

    pymongo keeps them (for ``MongoClient._duplicate``) but offers no public accessor;
    the attribute was name-mangled in older 4.x releases.
    """
    for name in ("_init_kwargs", "_MongoClient__init_kwargs"):
        init = getattr(client, name, None)
        if isinstance(init, dict):
            return dict(init)
    raise BackendError(
        "MongoBackend cannot read the connection settings of this pymongo MongoClient (unsupported "
        "pymongo version), so it could not reconnect in Dask workers. Pass the URI instead, e.g. "
        "Experiment(..., backend='mongodb://localhost:27017/my_db').")


def target_from_database(database: object) -> Target:
    """The target of a ``pymongo.database.Database``: its client's recipe and name.

    Takes any object: what a caller passed as ``MongoBackend(..., target)`` is checked here,
    so a ``MongoClient`` or anything else gets an error saying what to pass instead.
    """
    from pymongo import MongoClient
    from pymongo.database import Database

    if isinstance(database, MongoClient):
        raise BackendError(CLIENT_WITHOUT_DATABASE)
    if not isinstance(database, Database):
        raise BackendError(f"MongoBackend needs a URI or a pymongo Database, got {type(database).__qualname__}; "
                           f"{NAME_THE_DATABASE}.")
    args = _client_init_args(database.client)
    host = args.get("host") or "localhost"
    port = args.get("port") or 27017
    hosts = [host] if isinstance(host, str) else list(host)
    name = quote(database.name, safe="")
    if len(hosts) == 1 and "://" in hosts[0]:
        display = urlunsplit(urlsplit(hosts[0])._replace(path=f"/{name}"))
    else:
        netlocs = [urlsplit(h).netloc if "://" in h else h for h in hosts]
        netloc = ",".join(h if h.rsplit("]", 1)[-1].count(":") else f"{h}:{port}" for h in netlocs)
        display = f"mongodb://{netloc}/{name}"
    return Target(args, database.name, mask_password(display))
