"""The MongoDB backend plugin: ``mongodb://host:port/<database>`` or a pymongo ``Database``.

Registered through the ``daskperiment`` entry point ``mongo``. pymongo is imported
only when a MongoDB backend is actually used.
"""

from __future__ import annotations

from typing import Any

from daskperiment import hookimpl
from daskperiment.errors import BackendError
from daskperiment.hookspecs import RegisterBackend

from .backend import MongoBackend
from .connection import CLIENT_WITHOUT_DATABASE, SCHEMES

__all__ = ["MongoBackend", "make_backend", "register_backends"]


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    for scheme in SCHEMES:
        register(scheme, MongoBackend, extra="mongo")


@hookimpl
def make_backend(experiment_id: str, target: Any) -> MongoBackend | None:
    """A ``pymongo.database.Database`` → its backend; a ``MongoClient`` is refused (no database)."""
    if not type(target).__module__.startswith("pymongo"):
        return None  # not a pymongo object: no need to import pymongo to know
    from pymongo import MongoClient
    from pymongo.database import Database

    if isinstance(target, MongoClient):
        raise BackendError(CLIENT_WITHOUT_DATABASE)
    if isinstance(target, Database):
        return MongoBackend(experiment_id, target)
    return None
