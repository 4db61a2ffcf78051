"""Code context: the source of every step, per trial, with diffs when it changes."""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import logging
import textwrap
import threading
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from .backends import Backend

logger = logging.getLogger("daskperiment")


def source_of(func: Callable[..., Any]) -> str:
    """The dedented source of ``func`` including decorators, or a marker when unavailable."""
    try:
        return textwrap.dedent(inspect.getsource(func)).rstrip() + "\n"
    except (OSError, TypeError):
        return f"# source of {getattr(func, '__qualname__', func)!r} is not available\n"


def join_code(steps: Mapping[str, str]) -> str:
    """Every step's source, separated by two blank lines as PEP 8 separates top-level functions."""
    return "\n\n".join(source.rstrip("\n") + "\n" for source in steps.values())


def log_diff(step: str, old: str, new: str) -> None:
    """``Code context has been changed: <step>`` then the unified diff, one line a record."""
    logger.warning("Code context has been changed: %s", step)
    for line in list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm=""))[2:]:
        logger.warning("%s", line)


class CodeContext:
    """The steps of one experiment in definition order; stored once per distinct content."""

    def __init__(self) -> None:
        self.steps: dict[str, str] = {}
        self._lock = threading.Lock()
        self._snapshot: tuple[str, str] | None = None
        self._stored: set[str] = set()
        #: code of the previous trial (or what was last warned about), per step
        self.baseline: dict[str, str] | None = None

    def add(self, name: str, func: Callable[..., Any]) -> None:
        source = source_of(func)
        with self._lock:
            old = self.steps.get(name)
            if old is not None and old != source:
                log_diff(name, old, source)
                if self.baseline is not None:
                    self.baseline[name] = source
            self.steps[name] = source
            self._snapshot = None

    def snapshot(self) -> tuple[str, str]:
        """``(digest, text)`` of the current code; cached until a step changes."""
        snap = self._snapshot
        if snap is None:
            with self._lock:
                payload = json.dumps(self.steps, sort_keys=False)
                snap = self._snapshot = (hashlib.sha256(payload.encode()).hexdigest()[:32], join_code(self.steps))
        return snap

    def store(self, backend: Backend) -> tuple[str, str]:
        """Save the current code document once per digest and backend; return ``(digest, text)``."""
        digest, text = self.snapshot()
        if digest not in self._stored:
            backend.save_document("code", digest, {"steps": dict(self.steps)})
            self._stored.add(digest)
        return digest, text

    def warn_changes(self, previous: Mapping[str, str] | None) -> None:
        """Warn per step whose source differs from ``previous`` (the last trial's code)."""
        base = self.baseline if self.baseline is not None else previous
        if base:
            for name, source in self.steps.items():
                if name in base and base[name] != source:
                    log_diff(name, base[name], source)
        self.baseline = dict(self.steps)
