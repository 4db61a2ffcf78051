"""The git collector: the ``git`` section of every trial's environment.

Registered through the ``daskperiment`` entry point ``git``. The section
describes the repository containing the running script, or the working
directory (see :func:`repository.start_directory`); outside a repository it
says so instead of failing.
"""

from __future__ import annotations

from typing import Any

from daskperiment import hookimpl
from daskperiment.environment import ToolError

from .commands import describe, strip_credentials
from .repository import find_work_tree, fingerprint, start_directory

__all__ = ["collect_environment", "environment_fingerprint", "strip_credentials"]


@hookimpl
def collect_environment() -> dict[str, Any]:
    start = start_directory()
    found = find_work_tree(start)
    if found is None:
        return {"git": {"repository": None, "status": "not a git repository", "searched_from": str(start)}}
    try:
        return {"git": describe(found[0])}
    except ToolError as exc:
        return {"git": {"repository": str(found[0]), "error": str(exc)}}


def environment_fingerprint() -> tuple[Any, ...]:
    """Read by daskperiment before each trial: collect again only when this changes."""
    return fingerprint(start_directory())
