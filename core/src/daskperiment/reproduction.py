"""Re-running a recorded trial and saying whether it came out the same, or why not.

``ex.reproduce(trial_id)`` plans the trial again with its recorded parameters and
seed through the current code of its result step, warns about every difference
it can see before running (code per step, environment), runs it as a new trial
linked to the old one (``reproduces``), and compares outcomes: the result, then
each step's output hash in the order the steps ran, so "the result changed"
becomes "``load_data`` returned something else".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .comparison import EnvironmentChanges

__all__ = ["Reproduction", "StepDivergence", "divergent_steps", "first_divergence", "result_digest", "same_outcome"]

logger = logging.getLogger("daskperiment")


@dataclass(frozen=True)
class StepDivergence:
    """A step whose output differs between two runs, with the hashes of its inputs."""

    step: str
    call: int  #: which call of the step (0 for the first) when it ran several times
    output: tuple[str | None, str | None]  #: (before, after)
    input: tuple[str | None, str | None]  #: (before, after): equal inputs point at the step itself

    def __str__(self) -> str:
        if self.input[0] == self.input[1]:
            why = "with the same inputs (the step itself, or something it reads, changed)"
        else:
            why = "with different inputs (an earlier step or a parameter changed)"
        return f"step {self.step!r} returned something else {why}"


@dataclass(frozen=True)
class Reproduction:
    """What ``ex.reproduce`` found. ``str()`` reads as a report."""

    original: int  #: the trial re-run
    trial_ids: list[int]  #: the new trials (one per run)
    identical: bool  #: same success, result and step outputs as the original
    result: Any  #: the new result (of the first run), ``None`` when it failed
    error: str | None  #: the first run's error, when it failed
    code: dict[str, str] = field(default_factory=dict)  #: step → unified diff, recorded vs current
    environment: EnvironmentChanges = field(default_factory=EnvironmentChanges)
    first_divergent_step: StepDivergence | None = None
    #: steps whose output differed between the runs themselves (``runs=2`` or more): non-determinism
    nondeterministic_steps: list[str] = field(default_factory=list)

    @property
    def trial_id(self) -> int:
        """The (first) new trial's id."""
        return self.trial_ids[0]

    def __str__(self) -> str:
        verdict = "reproduced identically" if self.identical else "did NOT reproduce"
        out = [f"Trial {self.original} {verdict} as trial {self.trial_id}"]
        if self.error:
            out.append(f"  the re-run failed: {self.error}")
        if self.first_divergent_step is not None:
            out.append(f"  first difference: {self.first_divergent_step}")
        if self.nondeterministic_steps:
            out.append(f"  not deterministic between runs: {', '.join(self.nondeterministic_steps)}")
        if self.code:
            out.append("  code changed since the trial:")
            for diff in self.code.values():
                out.extend(f"    {line}" for line in diff.splitlines())
        if self.environment:
            out.append("  environment changed since the trial:")
            out.extend(f"    {line}" for line in self.environment.lines())
        return "\n".join(out)


def result_digest(record: Mapping[str, Any]) -> str | None:
    """A comparable digest of a record's result: its plain value, or its pickle's bytes."""
    pickled = record.get("result_pickle")
    if pickled is not None:
        return hashlib.sha256(bytes(pickled)).hexdigest()
    return repr(record.get("result"))


def _calls(record: Mapping[str, Any]) -> list[tuple[str, int, Mapping[str, Any]]]:
    """``(step, call index, step record)`` in the order the steps ran in the trial's process."""
    return [(step, i, call) for step, calls in (record.get("steps") or {}).items() for i, call in enumerate(calls)]


def divergent_steps(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[StepDivergence]:
    """Steps (in the order they ran in ``before``) whose output hash differs in ``after``."""
    later = {(step, i): call for step, i, call in _calls(after)}
    found = []
    for step, i, call in _calls(before):
        other = later.get((step, i))
        if other is None or other.get("output") != call.get("output"):
            found.append(StepDivergence(step, i, (call.get("output"), other.get("output") if other else None),
                                        (call.get("input"), other.get("input") if other else None)))
    return found


def first_divergence(before: Mapping[str, Any], after: Mapping[str, Any]) -> StepDivergence | None:
    """The earliest step whose output differs, preferring one whose inputs were the same (the cause)."""
    found = divergent_steps(before, after)
    for divergence in found:
        if divergence.input[0] == divergence.input[1]:
            return divergence
    return found[0] if found else None


def same_outcome(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    return (bool(before.get("success")) == bool(after.get("success"))
            and result_digest(before) == result_digest(after)
            and not divergent_steps(before, after))
