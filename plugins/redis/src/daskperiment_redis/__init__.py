"""The Redis backend plugin: experiments shared by a team through one Redis server.

Registered through the ``daskperiment`` entry point ``redis``. Importing this
module does not import ``redis`` (so ``daskperiment plugins`` stays fast);
the client library is loaded when a backend first talks to the server.
"""

from __future__ import annotations

import sys
from typing import Any

from daskperiment import hookimpl
from daskperiment.hookspecs import RegisterBackend

from .backend import RedisBackend

__all__ = ["RedisBackend", "make_backend", "register_backends"]


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    for scheme in ("redis", "rediss", "unix"):
        register(scheme, RedisBackend, extra="redis")


@hookimpl
def make_backend(experiment_id: str, target: Any) -> RedisBackend | None:
    """A ``redis.ConnectionPool`` or ``redis.Redis`` client → :class:`RedisBackend`.

    A caller holding such an object has imported ``redis`` already, so when it is
    not in ``sys.modules`` the target cannot be one and nothing is imported.
    """
    redis = sys.modules.get("redis")
    if redis is not None and isinstance(target, (redis.ConnectionPool, redis.Redis)):
        return RedisBackend(experiment_id, target)
    return None
