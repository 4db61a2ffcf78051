"""The SQL backend plugin: experiments in PostgreSQL, SQLite or MariaDB, queryable in plain SQL.

Registered through the ``daskperiment`` entry point ``sql``. Importing this module does
not import SQLAlchemy (so ``import daskperiment`` and ``daskperiment plugins`` stay fast);
it is loaded when a backend first talks to its database.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from daskperiment import hookimpl

from .backend import SQLBackend
from .connection import SCHEMES

__all__ = ["SCHEMES", "SQLBackend", "make_backend", "register_backends"]


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    for scheme in SCHEMES:
        register(scheme, SQLBackend)


@hookimpl
def make_backend(experiment_id: str, target: Any) -> SQLBackend | None:
    """A ``sqlalchemy.Engine`` → :class:`SQLBackend`.

    A caller holding an engine has imported SQLAlchemy already, so when it is not in
    ``sys.modules`` the target cannot be one and nothing is imported.
    """
    engine_module = sys.modules.get("sqlalchemy.engine")
    if engine_module is not None and isinstance(target, engine_module.Engine):
        return SQLBackend(experiment_id, target)
    return None
