"""What ``git`` says about a work tree: three commands, each with a timeout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from daskperiment.environment import run_tool

#: Seconds each ``git`` command may take.
TIMEOUT = 10.0
#: The recorded diff is cut beyond this many characters (a tracked data file can be huge).
MAX_DIFF_CHARS = 1_000_000

#: Variables that would make ``git`` describe another repository than the one found.
_REDIRECTING = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _REDIRECTING}
    # never take the index lock (a concurrent `git commit` must not fail because of us, and
    # an index refresh would move the fingerprint), never prompt, untranslated output
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return env


def _git(work_tree: Path, *args: str) -> str:
    return run_tool(["git", "-C", str(work_tree), *args], timeout=TIMEOUT, env=_environment())


def strip_credentials(url: str) -> str:
    """Drop user name, password or token and any query from a URL; scp-style and paths are kept."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _remotes(work_tree: Path) -> dict[str, str]:
    remotes = {}
    for line in _git(work_tree, "remote", "-v").splitlines():
        name, _, rest = line.partition("\t")
        url, _, kind = rest.rpartition(" ")
        if kind == "(fetch)":
            remotes[name] = strip_credentials(url)
    return remotes


def describe(work_tree: Path) -> dict[str, Any]:
    """Commit, branch, dirty flag, remotes and the diff of uncommitted changes to tracked files."""
    commit = branch = None
    dirty = False
    for line in _git(work_tree, "status", "--porcelain=v2", "--branch", "--untracked-files=no").splitlines():
        if line.startswith("# branch.oid "):
            commit = None if line.endswith("(initial)") else line.split()[-1]
        elif line.startswith("# branch.head "):
            branch = None if line.endswith("(detached)") else line[len("# branch.head "):]
        elif line and not line.startswith("#"):
            dirty = True
    diff = ""
    if dirty:
        against = ["HEAD"] if commit else ["--cached"]
        diff = _git(work_tree, "diff", *against, "--no-color", "--no-ext-diff", "--no-textconv")
        if len(diff) > MAX_DIFF_CHARS:
            diff = diff[:MAX_DIFF_CHARS] + f"\n[diff truncated at {MAX_DIFF_CHARS} characters]\n"
    return {"repository": str(work_tree), "commit": commit, "branch": branch, "dirty": dirty,
            "remotes": _remotes(work_tree), "diff": diff}
