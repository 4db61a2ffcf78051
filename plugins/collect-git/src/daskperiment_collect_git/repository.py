"""Which repository to describe, and a fingerprint of its state from file reads alone.

The fingerprint runs before every trial, so it never starts ``git``: it reads
``HEAD`` and stats the files a commit, checkout, ``git add`` or remote change
rewrites (the branch ref, ``packed-refs``, the index, the config).
"""

from __future__ import annotations

import functools
import os
import site
import stat
import sys
import sysconfig
from pathlib import Path
from typing import Any


@functools.lru_cache(maxsize=1)
def _python_roots() -> tuple[Path, ...]:
    """Where interpreters and installed packages live: a script there is a tool, not the experiment."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, site.getuserbase(),
             sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    return tuple(Path(root).resolve() for root in roots if root)


@functools.lru_cache(maxsize=16)
def _script_directory(path: str) -> Path | None:
    directory = Path(path).resolve().parent
    if any(directory.is_relative_to(root) for root in _python_roots()):
        return None  # pytest, ipython, a console script: not the user's code
    return directory


def start_directory() -> Path:
    """The running script's directory, or the working directory when there is no script.

    ``python my_experiment.py`` describes the repository of ``my_experiment.py``
    wherever it is run from; Jupyter, ``python -c`` and test runners (whose
    ``__main__`` lives under the Python installation) describe the working directory.
    """
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    directory = _script_directory(path) if path else None
    return directory if directory is not None else Path(os.getcwd())


def find_work_tree(start: Path) -> tuple[Path, Path] | None:
    """``(work tree, git directory)`` of the repository containing ``start``, or ``None``.

    A ``.git`` file (linked work trees, submodules) points to the git directory.
    One ``stat`` per directory level on plain strings: this runs before every trial.
    """
    directory = os.fspath(start)
    while True:
        dotgit = os.path.join(directory, ".git")
        try:
            is_dir = stat.S_ISDIR(os.stat(dotgit).st_mode)
        except OSError:
            is_dir = None
        if is_dir:
            return Path(directory), Path(dotgit)
        if is_dir is not None:
            text = _read(dotgit).decode(errors="replace")
            if text.startswith("gitdir:"):
                return Path(directory), (Path(directory) / text[len("gitdir:"):].strip()).resolve()
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return b""


def fingerprint(start: Path) -> tuple[Any, ...]:
    """Changes when the git section could have changed (except unstaged edits: see the README).

    Plain ``os`` calls, no ``pathlib``: this runs before every trial.
    """
    found = find_work_tree(start)
    if found is None:
        return ("not a git repository", str(start))
    work_tree, git_path = found
    git_dir = str(git_path)
    head = _read(os.path.join(git_dir, "HEAD"))
    common = git_dir
    if os.path.basename(git_dir) != ".git":  # a linked work tree: refs and config are shared
        relative = _read(os.path.join(git_dir, "commondir")).decode(errors="replace").strip()
        common = os.path.join(git_dir, relative) if relative else git_dir
    ref = head[len(b"ref:"):].strip().decode(errors="replace") if head.startswith(b"ref:") else None
    return (str(work_tree), head, _stat(os.path.join(common, ref)) if ref else None,
            _stat(os.path.join(common, "packed-refs")), _stat(os.path.join(git_dir, "index")),
            _stat(os.path.join(common, "config")))
