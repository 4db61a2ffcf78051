"""The MongoDB backend plugin: ``mongodb://host:port/<database>`` or a pymongo ``Database``.

Registered through the ``daskperiment`` entry point ``mongo``. pymongo is imported
only when a MongoDB backend is actually used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daskperiment import hookimpl

from .backend import MongoBackend
from .connection import SCHEMES

__all__ = ["MongoBackend", "make_backend", "register_backends"]


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    for scheme in SCHEMES:
        register(scheme, MongoBackend, extra="mongo")


@hookimpl
def make_backend(experiment_id: str, target: Any) -> MongoBackend | None:
    """A ``pymongo.database.Database`` → its backend; a ``MongoClient`` is refused (no database)."""
    if not type(target).__module__.startswith("pymongo"):
        return None  # not a pymongo object: no need to import pymongo to know
    from pymongo import MongoClient
    from pymongo.database import Database

    if isinstance(target, (Database, MongoClient)):
        return MongoBackend(experiment_id, target)
    return None
