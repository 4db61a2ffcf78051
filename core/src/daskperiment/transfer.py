"""Copy an experiment between any two backends: ``daskperiment copy <id> --from A --to B``.

The copy goes through the public :class:`~daskperiment.backends.Backend` interface only,
so it works for every backend, ours or a plugin's (local → PostgreSQL, Redis → local, …):

* **ids preserved**: trials are stored with :meth:`Backend.import_trial` under their own ids;
* **idempotent and resumable**: everything already in the target is compared, not written
  again; a trial the target has unfinished gets its outcome; a metric series the target
  has a prefix of (a copy interrupted between batches) gets the rest; so running the copy
  again after an interruption completes it without duplicates;
* **verified**: afterwards every trial record, metric series, referenced document and
  persisted result of the source is read back from the target and compared;
* **conflicts are errors**: a target trial with the same id but a different start
  (another experiment under the same name) is never overwritten.

Not copied: the purity record (input/output hashes of steps), which the interface cannot
enumerate; the target re-learns it from its next trials.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backends import Backend, MetricSeries
from .errors import BackendError
from .plugins import make_backend
from .records import START_FIELDS, TRIAL_FIELDS

__all__ = ["CopyConflictError", "CopyReport", "CopyVerificationError", "copy_experiment"]

logger = logging.getLogger("daskperiment")

DOCUMENT_KINDS = ("code", "environment")


class CopyConflictError(BackendError):
    """The target already holds different data under the same experiment and trial id."""


class CopyVerificationError(BackendError):
    """After copying, the target does not read back what the source holds."""


@dataclass
class CopyReport:
    """What a copy wrote (``*_copied``) and found already in place (``*_present``)."""

    trials_copied: int = 0
    trials_present: int = 0
    metric_batches_copied: int = 0
    persisted_copied: int = 0
    documents_copied: int = 0
    verified: bool = False

    def __str__(self) -> str:
        return (f"{self.trials_copied} trial(s) copied, {self.trials_present} already there; "
                f"{self.metric_batches_copied} metric batch(es), {self.persisted_copied} persisted result(s), "
                f"{self.documents_copied} document(s) copied" + ("; verified" if self.verified else ""))


def copy_experiment(experiment_id: str, source: Any, target: Any, *, verify: bool = True) -> CopyReport:
    """Copy experiment ``experiment_id`` from ``source`` to ``target`` (backends or ``backend=`` arguments)."""
    src = source if isinstance(source, Backend) else make_backend(experiment_id, source)
    dst = target if isinstance(target, Backend) else make_backend(experiment_id, target)
    if src.uri == dst.uri and type(src) is type(dst) and src.experiment_id == dst.experiment_id:
        raise BackendError(f"copy: source and target are the same ({src!r}); name two different backends.")
    report = CopyReport()
    records = src.load_trials()
    existing = {r["trial_id"]: r for r in dst.load_trials([r["trial_id"] for r in records])}
    logger.info("Copying %d trial(s) of %r from %r to %r", len(records), experiment_id, src, dst)
    code_documents = _copy_documents(src, dst, records, report)
    for record in records:
        _copy_trial(src, dst, record, existing.get(record["trial_id"]), report)
        _copy_metrics(src, dst, record["trial_id"], report)
        steps = (code_documents.get(record.get("code") or "") or {}).get("steps") or {}
        _copy_persisted(src, dst, record["trial_id"], steps, report)
        if steps:
            dst.export_code(record["trial_id"], "\n".join(steps.values()))
    if verify:
        verify_copy(src, dst, records, code_documents)
        report.verified = True
    logger.info("Copied %r: %s", experiment_id, report)
    return report


def _copy_documents(src: Backend, dst: Backend, records: list[dict[str, Any]],
                    report: CopyReport) -> dict[str, dict[str, Any]]:
    """Every document a trial references (before the trials, so none references a missing one)."""
    code: dict[str, dict[str, Any]] = {}
    for kind in DOCUMENT_KINDS:
        for digest in _digests(records, kind):
            document = src.load_document(kind, digest)
            if document is None:
                continue
            if kind == "code":
                code[digest] = document
            present = dst.load_document(kind, digest)
            if present is None:
                dst.save_document(kind, digest, document)
                report.documents_copied += 1
            elif present != document:
                raise CopyConflictError(f"copy: {dst!r} holds a different {kind} document {digest!r} than {src!r}.")
    return code


def _digests(records: list[dict[str, Any]], kind: str) -> list[str]:
    """The distinct digests of ``kind`` documents the trials reference."""
    return sorted({str(r[kind]) for r in records if r.get(kind)})


def _normalised(record: Mapping[str, Any]) -> dict[str, Any]:
    values = {f: record.get(f) for f in TRIAL_FIELDS}
    values["result_pickle"] = _bytes(values["result_pickle"])
    return values


def _copy_trial(src: Backend, dst: Backend, record: dict[str, Any], present: dict[str, Any] | None,
                report: CopyReport) -> None:
    if present is None:
        dst.import_trial(record)
        report.trials_copied += 1
        return
    want, have = _normalised(record), _normalised(present)
    if any(want[f] != have[f] for f in START_FIELDS):
        raise CopyConflictError(
            f"copy: trial {record['trial_id']} in {dst!r} is a different trial than in {src!r} (its start differs). "
            "The target already holds another experiment under this name: copy into another backend or "
            "experiment id.")
    if want != have:
        dst.import_trial(record)  # finished since the last copy, or interrupted before its outcome
        report.trials_copied += 1
    else:
        report.trials_present += 1


def _same_series(a: MetricSeries, b: MetricSeries) -> bool:
    return (a.epochs.dtype.kind == b.epochs.dtype.kind and np.array_equal(a.epochs, b.epochs)
            and np.array_equal(a.values, b.values, equal_nan=True))


def _copy_metrics(src: Backend, dst: Backend, trial_id: int, report: CopyReport) -> None:
    for key in src.metric_keys(trial_id):
        series = src.load_metrics(key, [trial_id]).get(trial_id)
        if series is None:
            continue
        present = dst.load_metrics(key, [trial_id]).get(trial_id)
        done = 0 if present is None else len(present.values)
        if present is not None and not _same_series(MetricSeries(series.epochs[:done], series.values[:done]), present):
            raise CopyConflictError(f"copy: metric {key!r} of trial {trial_id} in {dst!r} differs from {src!r} "
                                    "(it is not a part of the source's series).")
        if done < len(series.values):
            dst.save_metrics(trial_id, key, series.epochs[done:], series.values[done:])
            report.metric_batches_copied += 1


def _copy_persisted(src: Backend, dst: Backend, trial_id: int, steps: dict[str, str], report: CopyReport) -> None:
    """Persisted results of the trial's steps (the code document names every step)."""
    for step in steps:
        data = src.load_persisted(step, trial_id)
        if data is not None and _bytes(dst.load_persisted(step, trial_id)) != bytes(data):
            dst.save_persisted(step, trial_id, bytes(data))
            report.persisted_copied += 1


def _bytes(data: Any) -> bytes | None:
    return None if data is None else bytes(data)


def verify_copy(src: Backend, dst: Backend, records: list[dict[str, Any]],
                code_documents: dict[str, dict[str, Any]]) -> None:
    """Read everything back from the target and compare it with the source."""
    ids = [r["trial_id"] for r in records]
    copied = {r["trial_id"]: _normalised(r) for r in dst.load_trials(ids)}
    problems = [f"trial {r['trial_id']}" for r in records if copied.get(r["trial_id"]) != _normalised(r)]
    for kind in DOCUMENT_KINDS:
        for digest in _digests(records, kind):
            if src.load_document(kind, digest) != dst.load_document(kind, digest):
                problems.append(f"{kind} document {digest}")
    for record in records:
        trial_id = record["trial_id"]
        for key in src.metric_keys(trial_id):
            a, b = src.load_metrics(key, [trial_id]).get(trial_id), dst.load_metrics(key, [trial_id]).get(trial_id)
            if (a is None) != (b is None) or (a is not None and b is not None and not _same_series(a, b)):
                problems.append(f"metric {key!r} of trial {trial_id}")
        steps = (code_documents.get(record.get("code") or "") or {}).get("steps") or {}
        for step in steps:
            if _bytes(src.load_persisted(step, trial_id)) != _bytes(dst.load_persisted(step, trial_id)):
                problems.append(f"persisted {step!r} of trial {trial_id}")
    if problems:
        shown = ", ".join(problems[:10]) + (f" and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise CopyVerificationError(f"copy: {dst!r} does not read back what {src!r} holds: {shown}. "
                                    "Run the copy again (it resumes); if this persists, the target changes "
                                    "what it stores.")
