"""Environment capture: collected once per process, again only when something could have changed.

Every ``collect_environment`` implementation runs in its own daemon thread: the
built-in collectors mostly wait on subprocesses (``python -m cpuinfo``, ``git``,
``conda``), so they overlap, and one that hangs cannot hold a trial longer than
:data:`COLLECTOR_TIMEOUT`. Collection starts in the background when an
Experiment is created, so the first trial rarely waits for it.

Re-collection. A plugin may define ``environment_fingerprint()`` next to its
``collect_environment`` hook: a cheap, comparable value (a few ``os.stat``
calls, never a subprocess) that changes when its sections could have changed —
the git collector reads ``.git/HEAD`` and stats the ref and index files, the pip
collector stats the ``sys.path`` directories. Before each trial the fingerprints
are compared and only collectors whose fingerprint moved run again; plugins
without one are collected once per process. A later trial therefore pays a few
system calls, not a collection.

A collector that raises or times out is recorded as ``{"error": ...}`` in a
section named after its plugin; any section holding an ``"error"`` key is logged
once per process. The trial goes on.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .plugins import Collector, get_plugin_host

logger = logging.getLogger("daskperiment")

#: Seconds one collection waits for all collectors; stragglers are recorded as timed out.
COLLECTOR_TIMEOUT = 60.0

#: Name of the optional plugin-level function that says when to collect again.
FINGERPRINT_ATTRIBUTE = "environment_fingerprint"

#: Warning headers for well-known sections (others get a generic one).
SECTION_TITLES = {
    "requirements": "Installed Python packages have been changed",
    "python": "Python information has been changed",
    "device": "Device information has been changed",
    "cpu": "CPU information has been changed",
    "git": "Git information has been changed",
    "conda": "conda information has been changed",
    "numpy": "NumPy information has been changed",
    "scipy": "SciPy information has been changed",
    "pandas": "pandas information has been changed",
}


@dataclass
class _Collected:
    """What one plugin contributed, and the fingerprint it had just before collecting."""

    plugin: Any
    fingerprint: Any
    sections: dict[str, Any]


_lock = threading.Lock()
_future: Future[tuple[str, dict[str, Any]]] | None = None
_entries: dict[str, _Collected] = {}
_snapshot: tuple[str, dict[str, Any]] | None = None
_logged_failures: set[str] = set()


def _jsonable(value: Any) -> Any:
    """Plain JSON every backend can store: unknown types as text; NaN/inf refused (not JSON)."""
    return json.loads(json.dumps(value, default=str, allow_nan=False))


def digest_of(sections: Mapping[str, Any]) -> str:
    payload = json.dumps(sections, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _fingerprint(plugin: Any) -> Any:
    function = getattr(plugin, FINGERPRINT_ATTRIBUTE, None)
    if function is None:
        return None
    try:
        return function()
    except Exception as exc:  # a broken fingerprint must not break trials: collect once
        logger.debug("environment fingerprint of %r failed: %s", plugin, exc)
        return None


def _run_one(collector: Collector, out: dict[str, Any]) -> None:
    try:
        result = collector.collect()
        out["sections"] = {name: _jsonable(value) for name, value in dict(result or {}).items()}
    except Exception as exc:
        out["sections"] = {collector.name: {"error": f"{type(exc).__name__}: {exc}"}}


def _run(collectors: list[Collector]) -> dict[str, dict[str, Any]]:
    """Sections per plugin name; every collector in its own thread, one shared deadline."""
    started = []
    for collector in collectors:
        out: dict[str, Any] = {}
        thread = threading.Thread(target=_run_one, args=(collector, out), daemon=True,
                                  name=f"daskperiment-collect-{collector.name}")
        thread.start()
        started.append((collector, thread, out))
    deadline = time.monotonic() + COLLECTOR_TIMEOUT
    results = {}
    for collector, thread, out in started:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive() or "sections" not in out:
            out["sections"] = {collector.name: {"error": f"timed out after {COLLECTOR_TIMEOUT:g} s"}}
        results[collector.name] = out["sections"]
    return results


def is_failure(section: Any) -> bool:
    """A section recording a collector's failure (``{"error": ...}``) rather than what it found."""
    return isinstance(section, dict) and "error" in section


def _log_failures(sections: Mapping[str, Any]) -> None:
    for name, value in sections.items():
        if is_failure(value):
            key = f"{name}: {value['error']}"
            if key not in _logged_failures:
                _logged_failures.add(key)
                logger.warning("Environment collector for section %r failed: %s", name, value["error"])


def _update() -> tuple[str, dict[str, Any]]:
    """Collect what is missing or stale; called with ``_lock`` held."""
    global _snapshot
    collectors = get_plugin_host().collectors()
    stale, fingerprints = [], {}
    for collector in collectors:
        fingerprints[collector.name] = fingerprint = _fingerprint(collector.plugin)
        entry = _entries.get(collector.name)
        if entry is None or entry.plugin is not collector.plugin or entry.fingerprint != fingerprint:
            stale.append(collector)
    names = [collector.name for collector in collectors]
    if not stale and _snapshot is not None and list(_entries) == names:
        return _snapshot
    collected = _run(stale) if stale else {}
    for collector in stale:
        _entries[collector.name] = _Collected(collector.plugin, fingerprints[collector.name],
                                              collected[collector.name])
    for name in [name for name in _entries if name not in fingerprints]:
        del _entries[name]
    ordered = {name: _entries.pop(name) for name in names}
    _entries.update(ordered)
    sections: dict[str, Any] = {}
    for entry in ordered.values():
        sections.update(entry.sections)
    sections = dict(sorted(sections.items()))
    _log_failures(sections)
    _snapshot = (digest_of(sections), sections)
    return _snapshot


def collect() -> dict[str, Any]:
    """Run every collector now (ignoring what is cached); failures become sections."""
    sections: dict[str, Any] = {}
    for plugin_sections in _run(get_plugin_host().collectors()).values():
        sections.update(plugin_sections)
    return dict(sorted(sections.items()))


def prefetch() -> None:
    """Start the first collection in the background (idempotent)."""
    global _future
    with _lock:
        if _future is not None:
            return
        future: Future[tuple[str, dict[str, Any]]] = Future()
        _future = future

    def run() -> None:
        try:
            with _lock:
                future.set_result(_update())
        except BaseException as exc:  # pragma: no cover - _update() records collector failures
            future.set_exception(exc)

    threading.Thread(target=run, name="daskperiment-environment", daemon=True).start()


def current() -> tuple[str, dict[str, Any]]:
    """``(digest, sections)`` for this process, re-collecting only what may have changed.

    The returned sections are shared: treat them as read-only.
    """
    prefetch()
    assert _future is not None
    _future.result()
    with _lock:
        return _update()


def current_sections() -> dict[str, Any]:
    """A copy of this process's current sections, safe to modify (the cache is shared)."""
    return copy.deepcopy(current()[1])


def reset() -> None:
    """Forget everything collected (the next trial collects again)."""
    global _future, _snapshot
    with _lock:
        _future = None
        _snapshot = None
        _entries.clear()
        _logged_failures.clear()


def _after_fork_in_child() -> None:
    """A forked child has no collection threads: a collection still running in the parent
    would never finish there, and its lock may be held forever. Start afresh if so."""
    global _lock, _future, _snapshot
    _lock = threading.Lock()
    if _future is not None and not _future.done():
        _future, _snapshot = None, None
        _entries.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ToolError(Exception):
    """A command run by a collector failed; the message is the one-line reason to record."""


def run_tool(args: list[str], *, timeout: float, cwd: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None) -> str:
    """Run an external command for a collector and return its standard output.

    Never waits on input, never longer than ``timeout`` seconds, never lets the
    tool's output reach the terminal. A missing tool, a timeout or a non-zero exit
    raises :class:`ToolError` with a message meant for the ``{"error": ...}`` record.
    """
    name = os.path.basename(str(args[0]))
    try:
        proc = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=timeout,
                              cwd=cwd, env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
                              check=False)
    except FileNotFoundError:
        raise ToolError(f"{name}: command not found") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{name} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise ToolError(f"{name} could not be started: {exc}") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        command = " ".join([name, *map(str, args[1:3])])
        raise ToolError(f"{command} exited with status {proc.returncode}: {reason}")
    return proc.stdout


def _as_lines(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.splitlines()
    return json.dumps(value, indent=1, sort_keys=True, default=str).splitlines()


def warn_changes(previous: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """A WARNING per changed section, followed by its unified diff (one record per line)."""
    for name in sorted(set(previous) | set(now)):
        if previous.get(name) == now.get(name):
            continue
        logger.warning("%s", SECTION_TITLES.get(name, f"Environment section {name!r} has been changed"))
        diff = difflib.unified_diff(_as_lines(previous.get(name, "")), _as_lines(now.get(name, "")),
                                    lineterm="", n=0)
        for line in list(diff)[2:]:
            logger.warning("%s", line)
