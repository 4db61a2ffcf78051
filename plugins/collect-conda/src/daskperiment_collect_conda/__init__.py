"""The conda collector: the ``conda`` section, only when conda exists.

The text of ``conda info`` followed by ``conda list --export`` of the conda
environment this Python belongs to (or the activated one). Registered through
the ``daskperiment`` entry point ``conda``.

Without conda there is no section and no cost beyond one ``PATH`` lookup per
process. With conda, the two commands run once per process with a timeout in
daskperiment's background collection, and again when the environment's
``conda-meta/history`` (appended by every conda transaction) changes.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from typing import Any

from daskperiment import hookimpl
from daskperiment.environment import ToolError, run_tool

__all__ = ["collect_environment", "conda_executable", "environment_fingerprint", "environment_prefix"]

#: Seconds each conda command may take (conda is slow to start).
TIMEOUT = 30.0


@functools.lru_cache(maxsize=8)
def _find(conda_exe: str | None, path: str | None) -> str | None:
    if conda_exe and os.path.isfile(conda_exe):
        return conda_exe
    return shutil.which("conda", path=path)


def conda_executable() -> str | None:
    """``$CONDA_EXE`` (set by ``conda activate``), else ``conda`` on ``PATH``; ``None`` without conda."""
    return _find(os.environ.get("CONDA_EXE"), os.environ.get("PATH"))


def environment_prefix() -> str | None:
    """The conda environment of this interpreter, else the activated one, else ``None``."""
    if os.path.isdir(os.path.join(sys.prefix, "conda-meta")):
        return sys.prefix
    return os.environ.get("CONDA_PREFIX") or None


@hookimpl
def collect_environment() -> dict[str, Any] | None:
    executable = conda_executable()
    if executable is None:
        return None
    prefix = environment_prefix()
    try:
        text = "$ conda info\n" + run_tool([executable, "info"], timeout=TIMEOUT)
        if prefix is not None:
            packages = run_tool([executable, "list", "--export", "--prefix", prefix], timeout=TIMEOUT)
            text += f"\n$ conda list --export --prefix {prefix}\n{packages}"
    except ToolError as exc:
        return {"conda": {"error": str(exc)}}
    return {"conda": text}


def environment_fingerprint() -> tuple[Any, ...]:
    """Read by daskperiment before each trial: conda's location and its environment's history file."""
    prefix = environment_prefix()
    try:
        history = os.stat(os.path.join(prefix, "conda-meta", "history")) if prefix else None
    except OSError:
        history = None
    return (conda_executable(), prefix, history and (history.st_mtime_ns, history.st_size))
