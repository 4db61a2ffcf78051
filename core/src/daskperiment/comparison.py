"""What differs between two trials, or between a trial and now.

Plain functions over stored records and documents (no Experiment): ``ex.diff``,
``ex.reproduce``, ``daskperiment diff`` and the dashboard's compare view all use
them, so every place shows the same differences.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .backends import Backend
from .environment_view import installed_packages
from .serialization import decode_parameters

__all__ = ["MISSING", "EnvironmentChanges", "MetricSummary", "PackageChanges", "TrialDiff", "code_changes",
           "compare_trials", "environment_changes", "package_changes"]


class _Missing:
    """Stands for a value one side does not have (a parameter only one trial declared)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class PackageChanges:
    """Installed distributions: name → version, from the ``requirements`` sections."""

    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        return ([f"+ {name} {version}" for name, version in sorted(self.added.items())]
                + [f"- {name} {version}" for name, version in sorted(self.removed.items())]
                + [f"~ {name} {old} -> {new}" for name, (old, new) in sorted(self.changed.items())])


def _packages(requirements: Any) -> dict[str, str]:
    return {name: version for name, (version, _) in installed_packages(requirements).items()}


def package_changes(before: Any, after: Any) -> PackageChanges:
    old, new = _packages(before), _packages(after)
    return PackageChanges(
        added={name: new[name] for name in new.keys() - old.keys()},
        removed={name: old[name] for name in old.keys() - new.keys()},
        changed={name: (old[name], new[name]) for name in old.keys() & new.keys() if old[name] != new[name]})


#: The facts of each section that say "another machine or interpreter" (the rest is detail).
_KEY_FACTS = {
    "python": ("version", "implementation", "executable"),
    "device": ("system", "release", "machine", "node"),
    "git": ("commit", "branch", "dirty"),
}


@dataclass(frozen=True)
class EnvironmentChanges:
    """Differences between two environment documents, most telling first."""

    packages: PackageChanges = field(default_factory=PackageChanges)
    facts: dict[str, tuple[Any, Any]] = field(default_factory=dict)  #: "python.version" → (before, after)
    sections: list[str] = field(default_factory=list)  #: other sections whose content differs

    def __bool__(self) -> bool:
        return bool(self.packages or self.facts or self.sections)

    def lines(self) -> list[str]:
        out = [f"{name}: {before!r} -> {after!r}" for name, (before, after) in self.facts.items()]
        if self.packages:
            out.append("packages:")
            out.extend(f"  {line}" for line in self.packages.lines())
        out.extend(f"section {name!r} changed" for name in self.sections)
        return out


def environment_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> EnvironmentChanges:
    facts: dict[str, tuple[Any, Any]] = {}
    for section, keys in _KEY_FACTS.items():
        old, new = before.get(section) or {}, after.get(section) or {}
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for key in keys:
                if old.get(key) != new.get(key):
                    facts[f"{section}.{key}"] = (old.get(key), new.get(key))
    covered = {"requirements", *_KEY_FACTS}
    sections = sorted(name for name in set(before) | set(after)
                      if name not in covered and before.get(name) != after.get(name))
    for section in _KEY_FACTS:  # differences beyond the key facts (say, the git diff text)
        if before.get(section) != after.get(section) and not any(f.startswith(f"{section}.") for f in facts):
            sections.append(section)
    return EnvironmentChanges(package_changes(before.get("requirements"), after.get("requirements")),
                              facts, sorted(sections))


def code_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """Step name → unified diff of its source, for steps added, removed or changed."""
    changes = {}
    for step in dict.fromkeys([*before, *after]):
        old, new = before.get(step, ""), after.get(step, "")
        if old != new:
            diff = difflib.unified_diff(old.splitlines(), new.splitlines(), f"{step} (before)", f"{step} (after)",
                                        lineterm="")
            changes[step] = "\n".join(diff)
    return changes


@dataclass(frozen=True)
class MetricSummary:
    """Last, minimum and maximum value of one metric in one trial (``None`` without points)."""

    last: float | None
    minimum: float | None
    maximum: float | None

    def __str__(self) -> str:
        if self.last is None:
            return "no points"
        return f"last {self.last:.6g}, min {self.minimum:.6g}, max {self.maximum:.6g}"


def _summary(values: NDArray[np.float64] | None) -> MetricSummary:
    if values is None or not len(values):
        return MetricSummary(None, None, None)
    finite = values[~np.isnan(values)]
    if not len(finite):
        return MetricSummary(float(values[-1]), None, None)
    return MetricSummary(float(values[-1]), float(finite.min()), float(finite.max()))


def _same(a: Any, b: Any) -> bool:
    """Equal as recorded values: NaN equals NaN, and ``True`` is not ``1``."""
    if type(a) is not type(b) and (isinstance(a, bool) or isinstance(b, bool)):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


@dataclass(frozen=True)
class TrialDiff:
    """The differences between trials ``a`` and ``b`` of one experiment; ``str()`` reads as a report."""

    experiment_id: str
    a: int
    b: int
    parameters: dict[str, tuple[Any, Any]]  #: only the differing ones; :data:`MISSING` on a side without it
    seed: tuple[Any, Any] | None
    result: tuple[Any, Any] | None
    status: tuple[Any, Any] | None  #: (success, description) of each side, when they differ
    code: dict[str, str]  #: step → unified diff
    environment: EnvironmentChanges
    metrics: dict[str, tuple[MetricSummary, MetricSummary]]  #: every metric either trial saved

    @property
    def identical(self) -> bool:
        """Same parameters, seed, result, status, code and environment (metrics are not compared)."""
        return not (self.parameters or self.seed or self.result or self.status or self.code or self.environment)

    def __str__(self) -> str:
        out = [f"Experiment {self.experiment_id!r}: trial {self.a} vs trial {self.b}"]
        if self.identical:
            out.append("  same parameters, seed, result, status, code and environment")
        if self.parameters:
            out.append("parameters:")
            out.extend(f"  {name}: {a!r} -> {b!r}" for name, (a, b) in self.parameters.items())
        for label, pair in (("seed", self.seed), ("result", self.result), ("status", self.status)):
            if pair is not None:
                out.append(f"{label}: {pair[0]!r} -> {pair[1]!r}")
        if self.code:
            out.append("code:")
            for diff in self.code.values():
                out.extend(f"  {line}" for line in diff.splitlines())
        if self.environment:
            out.append("environment:")
            out.extend(f"  {line}" for line in self.environment.lines())
        if self.metrics:
            out.append("metrics:")
            for key, (a, b) in self.metrics.items():
                out.append(f"  {key}: {a}  |  {b}")
        return "\n".join(out)


def _document(backend: Backend, kind: str, digest: str | None) -> dict[str, Any]:
    return (backend.load_document(kind, digest) if digest else None) or {}


def compare_trials(backend: Backend, a: Mapping[str, Any], b: Mapping[str, Any]) -> TrialDiff:
    """Compare two trial records of ``backend`` (as ``load_trials`` returns them)."""
    pa, pb = decode_parameters(a.get("parameters")), decode_parameters(b.get("parameters"))
    parameters = {name: (pa.get(name, MISSING), pb.get(name, MISSING)) for name in dict.fromkeys([*pa, *pb])
                  if name not in pa or name not in pb or not _same(pa[name], pb[name])}

    def pair(key: str) -> tuple[Any, Any] | None:
        return None if _same(a.get(key), b.get(key)) else (a.get(key), b.get(key))

    status = None
    if a.get("success") != b.get("success") or a.get("description") != b.get("description"):
        status = ((a.get("success"), a.get("description")), (b.get("success"), b.get("description")))
    result = pair("result")
    if result is None and a.get("result_pickle") != b.get("result_pickle"):
        result = (a.get("result"), b.get("result"))
    code = code_changes(_document(backend, "code", a.get("code")).get("steps") or {},
                        _document(backend, "code", b.get("code")).get("steps") or {})
    environment = EnvironmentChanges() if a.get("environment") == b.get("environment") else environment_changes(
        _document(backend, "environment", a.get("environment")), _document(backend, "environment", b.get("environment")))
    ids = (int(a["trial_id"]), int(b["trial_id"]))
    metrics = {}
    for key in sorted(set(backend.metric_keys(ids[0])) | set(backend.metric_keys(ids[1]))):
        series = backend.load_metrics(key, ids)
        metrics[key] = (_summary(series[ids[0]].values if ids[0] in series else None),
                        _summary(series[ids[1]].values if ids[1] in series else None))
    return TrialDiff(backend.experiment_id, ids[0], ids[1], parameters, pair("seed"), result, status, code,
                     environment, metrics)
