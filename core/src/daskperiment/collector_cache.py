"""A small on-disk cache for environment sections that are slow to collect and rarely change.

Why: a few collectors spend a second or more in a subprocess (py-cpuinfo executing CPUID,
the numpy probe importing numpy, scipy and pandas' optional dependencies), once per Python
process. For a script that runs one trial per process that second is most of the trial.
What they report only changes with what the key names (the boot, the interpreter, the
installed distributions), so a collector can keep its last answer under such a key.

Where: ``$DASKPERIMENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/daskperiment``, else
``~/.cache/daskperiment``. Setting ``DASKPERIMENT_CACHE_DIR`` to an empty string turns the
cache off. Only answers without an ``"error"`` are kept, entries are written atomically, and
an unreadable or unwritable cache only means collecting again: it never fails a trial.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from .environment import is_failure

logger = logging.getLogger("daskperiment")

ENV_CACHE_DIR = "DASKPERIMENT_CACHE_DIR"


def cache_dir() -> pathlib.Path | None:
    """The cache folder, or ``None`` when ``DASKPERIMENT_CACHE_DIR`` is set but empty."""
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured is not None:
        return pathlib.Path(configured).expanduser() if configured.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "daskperiment"


def boot_id() -> str | None:
    """An id that changes at every boot (Linux), or ``None`` where there is none to read.

    Hardware facts are cached per boot: the CPU cannot change without one.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip() or None
    except OSError:
        return None


def installed_distributions() -> list[str]:
    """Names of the ``*.dist-info`` / ``*.egg-info`` entries on ``sys.path``: they carry the
    name and version of every installed distribution, read with one ``listdir`` per entry."""
    found: list[str] = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found += (name for name in names if name.endswith((".dist-info", ".egg-info")))
    return sorted(found)


def cached_sections(name: str, key: Any, collect: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``collect()``'s sections, from the cache when an entry for ``(name, key)`` exists.

    ``key`` is any JSON-serializable value naming everything the answer depends on;
    ``None`` means "not cacheable here" and always collects.
    """
    folder = cache_dir()
    if folder is None or key is None:
        return collect()
    digest = hashlib.sha256(json.dumps([name, key], sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = folder / f"{name}-{digest}.json"
    try:
        with open(path, encoding="utf-8") as file:
            cached = json.load(file)
        if isinstance(cached, dict):
            return cached
    except (OSError, ValueError):
        pass  # missing, unreadable or torn: collect again
    sections = collect()
    if not any(map(is_failure, sections.values())):
        _write(path, sections)
    return sections


def _write(path: pathlib.Path, sections: dict[str, Any]) -> None:
    """Write atomically (temp file, then rename) so a concurrent reader never sees half an entry."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(sections, file, sort_keys=True, default=str)
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError as exc:
        logger.debug("environment cache not written (%s): %s", path, exc)
