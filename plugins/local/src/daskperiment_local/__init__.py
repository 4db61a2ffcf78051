"""The local backend plugin: SQLite (WAL) plus plain files under one directory.

Registered through the ``daskperiment`` entry point ``local``, exactly like a
third-party plugin.
"""

from __future__ import annotations

import pathlib
from typing import Any

from daskperiment import hookimpl
from daskperiment.hookspecs import RegisterBackend

from .backend import DEFAULT_ROOT, LocalBackend

__all__ = ["LocalBackend", "register_backends", "make_backend"]


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("file", LocalBackend)


@hookimpl
def make_backend(experiment_id: str, target: Any) -> LocalBackend | None:
    """``None`` → ``daskperiment_cache/<id>``; a :class:`pathlib.Path` → that directory."""
    if target is None:
        return LocalBackend(experiment_id, pathlib.Path(DEFAULT_ROOT) / experiment_id)
    if isinstance(target, pathlib.PurePath):
        return LocalBackend(experiment_id, target)
    return None
