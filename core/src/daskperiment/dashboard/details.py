"""What the trial and compare pages show beyond :mod:`daskperiment.comparison` (which finds the
differences between two trials for ``ex.diff``, ``daskperiment diff`` and this compare view):
the parameters of several trials side by side, diffs as classified lines, packages as a table."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..environment_view import installed_packages


__all__ = ["diff_lines", "packages", "parameter_rows", "step_timings"]

#: The ``requirements`` section as a table: name → (version, location).
packages = installed_packages


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) pairs; kind is ``add``, ``del``, ``hunk``, ``file`` or ``same``."""
    lines = []
    for line in diff.splitlines():
        kind = ("file" if line.startswith(("---", "+++")) else "hunk" if line.startswith("@@")
                else "add" if line.startswith("+") else "del" if line.startswith("-") else "same")
        lines.append((kind, line))
    return lines


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def parameter_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per parameter name: the value in each trial and whether they differ."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record.get("parameters") or {}))
    missing = object()
    rows = []
    for name in names:
        values = [(record.get("parameters") or {}).get(name, missing) for record in records]
        shown = ["(not set)" if v is missing else _shown(v) for v in values]
        rows.append({"name": name, "values": shown, "differs": len(set(shown)) > 1})
    return rows


def step_timings(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per step of the trial (as recorded in its ``steps`` field): calls, seconds, errors."""
    rows = []
    for step, calls in (record.get("steps") or {}).items():
        calls = calls or []
        errors = [c.get("error") for c in calls if c.get("error")]
        rows.append({"step": step, "calls": len(calls), "seconds": sum(c.get("seconds") or 0.0 for c in calls),
                     "error": errors[0] if errors else None})
    return rows
