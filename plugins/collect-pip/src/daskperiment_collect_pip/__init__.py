"""The pip collector: the ``requirements`` section, one line per installed distribution.

Each line reads ``pandas 2.2.0 (/path/to/site-packages)`` — name, version and
where it is installed, as the original daskperiment recorded it — and an
editable install reads ``mylib 0.3.dev0 (/home/me/mylib, editable)`` with its
source directory. Registered through the ``daskperiment`` entry point ``pip``.

Read with :mod:`importlib.metadata` from the metadata directories on
``sys.path``: no pip and no subprocess. When a name is installed twice on
``sys.path`` (a virtual environment over system site-packages), the one Python
imports is listed, as ``pip list`` does.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from daskperiment import hookimpl

__all__ = ["collect_environment", "environment_fingerprint", "requirement_lines"]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _editable_source(dist: metadata.Distribution) -> str | None:
    """The source directory of an editable install, from PEP 610's ``direct_url.json``."""
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        return None
    if not isinstance(direct, dict) or not (direct.get("dir_info") or {}).get("editable"):
        return None
    url = urlsplit(direct.get("url", ""))
    return url2pathname(url.path) if url.scheme == "file" else direct.get("url")


def _location(dist: metadata.Distribution) -> str:
    try:
        location = dist.locate_file("")
    except NotImplementedError:  # a distribution served by a custom finder may not say
        return "unknown location"
    # a file system path for every installed distribution; a custom finder may answer any SimplePath
    return os.fspath(location) if isinstance(location, os.PathLike) else "unknown location"


def requirement_lines() -> list[str]:
    """``name version (location)`` per importable distribution, sorted by name."""
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or _canonical(name) in seen:
            continue
        source = _editable_source(dist)
        where = f"{source}, editable" if source is not None else _location(dist)
        seen[_canonical(name)] = f"{name} {dist.version} ({where})"
    return [seen[key] for key in sorted(seen)]


@hookimpl
def collect_environment() -> dict[str, Any]:
    return {"requirements": "\n".join(requirement_lines()) + "\n"}


def _state(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path or ".")  # "" on sys.path is the working directory
    except OSError:
        return None
    return st.st_mtime_ns, st.st_nlink


_watched: dict[str, bool] = {}


def _code_directories() -> set[str]:
    """The working directory and the directory of the script being run."""
    directories = {os.getcwd()}
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        directories.add(os.path.dirname(os.path.abspath(main_file)))
    return directories


def _is_watched(path: str) -> bool:
    """Whether ``path``'s modification time says something about installed distributions
    (decided once per process and entry).

    The working directory and the script's directory change whenever a file is written
    there (a result, a log, the default ``daskperiment_cache``); watching them would
    re-collect this section on nearly every trial. They are watched only when they hold
    distribution metadata themselves.
    """
    known = _watched.get(path)
    if known is None:
        absolute = os.path.abspath(path or ".")
        if absolute not in _code_directories():
            known = True
        else:
            try:
                names = os.listdir(absolute)
            except OSError:
                names = []
            known = any(name.endswith((".dist-info", ".egg-info", ".egg-link")) for name in names)
        _watched[path] = known
    return known


def environment_fingerprint() -> tuple[Any, ...]:
    """Read by daskperiment before each trial: the ``sys.path`` entries, and the mtime and link
    count of each directory that can hold distributions (see :func:`_is_watched`).

    Installing, upgrading or removing a distribution adds or removes a metadata
    directory, which changes the modification time (and, on most file systems,
    the link count) of the directory holding it.
    """
    return tuple((entry, _state(entry) if _is_watched(entry) else None) for entry in sys.path)
