"""What the trial and compare pages show: readable environments and the differences
between trials (parameters, code as a unified diff, packages, Python, git)."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Mapping, Sequence

from ..records import TrialRecord

__all__ = ["code_diff", "environment_changes", "flatten", "packages", "parameter_rows", "status_of"]

_REQUIREMENT = re.compile(r"^(?P<name>\S+) (?P<version>\S+)(?: \((?P<where>.*)\))?$")


def status_of(record: TrialRecord, runs_status: str | None = None) -> str:
    if runs_status:
        return runs_status
    success = record.get("success")
    return "running" if success is None else ("finished" if success else "failed")


def packages(section: Any) -> dict[str, tuple[str, str]]:
    """The pip collector's ``requirements`` text → name → (version, location)."""
    rows: dict[str, tuple[str, str]] = {}
    lines = section.splitlines() if isinstance(section, str) else (section if isinstance(section, list) else [])
    for line in lines:
        match = _REQUIREMENT.match(str(line).strip())
        if match:
            rows[match["name"]] = (match["version"], match["where"] or "")
    return rows


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts → ``a.b.c`` keys, for comparing sections field by field."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def environment_changes(base: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Packages added, removed and changed, then every other differing field or text section."""
    before, after = packages(base.get("requirements")), packages(other.get("requirements"))
    changes: dict[str, Any] = {
        "added": sorted((name, after[name][0]) for name in after.keys() - before.keys()),
        "removed": sorted((name, before[name][0]) for name in before.keys() - after.keys()),
        "changed": sorted((name, before[name][0], after[name][0]) for name in before.keys() & after.keys()
                          if before[name][0] != after[name][0]),
        "fields": [], "texts": [],
    }
    for section in sorted(base.keys() | other.keys()):
        if section == "requirements":
            continue
        a, b = base.get(section), other.get(section)
        if a == b:
            continue
        if isinstance(a, str) or isinstance(b, str):
            changes["texts"].append((section, unified((a or "") if isinstance(a, str) else _shown(a),
                                                      (b or "") if isinstance(b, str) else _shown(b))))
            continue
        fa, fb = flatten(a, section), flatten(b, section)
        for key in sorted(fa.keys() | fb.keys()):
            if fa.get(key) != fb.get(key):
                changes["fields"].append((key, _shown(fa.get(key)), _shown(fb.get(key))))
    return changes


def unified(before: str, after: str, from_name: str = "before", to_name: str = "after") -> list[tuple[str, str]]:
    """A unified diff as (kind, line) pairs; kind is ``add``, ``del``, ``hunk``, ``file`` or ``same``."""
    lines = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), from_name, to_name, lineterm=""):
        kind = ("file" if line.startswith(("---", "+++")) else "hunk" if line.startswith("@@")
                else "add" if line.startswith("+") else "del" if line.startswith("-") else "same")
        lines.append((kind, line))
    return lines


def code_diff(before: str, after: str, base_id: int, other_id: int) -> list[tuple[str, str]]:
    return unified(before, after, f"trial {base_id}", f"trial {other_id}")


def parameter_rows(records: Sequence[TrialRecord]) -> list[dict[str, Any]]:
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
