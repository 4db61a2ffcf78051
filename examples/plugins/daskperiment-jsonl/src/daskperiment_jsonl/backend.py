"""JsonLinesBackend: one experiment as plain files under ``<root>/<experiment id>/``.

``trials.jsonl`` holds one start record per line (line n is trial n), ``outcomes.jsonl``
one outcome per line (the last one of a trial wins), ``metrics.jsonl`` one batch of
points per line. Persisted results, documents, step-cache entries and the purity record are
files of their own.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np
from daskperiment.backends import Backend
from daskperiment.records import (OUTCOME_FIELDS, START_FIELDS, STEP_HASH_LIMIT, CacheEntry, MetricSeries,
                                  empty_record)
from filelock import FileLock
from numpy.typing import NDArray


class JsonLinesBackend(Backend):
    """Stores one experiment as JSON-lines files under ``<root>/<experiment id>/``."""

    scheme = "jsonl"

    def __init__(self, experiment_id: str, root: str | os.PathLike[str]) -> None:
        super().__init__(experiment_id)
        self.root = pathlib.Path(root)
        self.path = self.root / experiment_id

    @classmethod
    def from_uri(cls, experiment_id: str, uri: str) -> JsonLinesBackend:
        """``jsonl:///absolute/directory`` or ``jsonl://relative/directory``."""
        parts = urlsplit(uri)
        return cls(experiment_id, unquote(parts.netloc + parts.path))

    @property
    def uri(self) -> str:
        return f"jsonl://{self.root.as_posix()}"

    # ---- files ----------------------------------------------------------------
    def _lock(self) -> FileLock:
        """Held while a file is appended or rewritten. A new lock object each time: each one
        opens the lock file itself, so threads exclude each other as processes do."""
        self.path.mkdir(parents=True, exist_ok=True)
        return FileLock(self.path / ".lock")

    def _append(self, name: str, row: Mapping[str, Any]) -> None:
        with self._lock(), open(self.path / name, "a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")

    def _read_lines(self, name: str) -> list[dict[str, Any]]:
        """Every complete line of a JSON-lines file; none when the file does not exist yet."""
        try:
            with open(self.path / name, encoding="utf-8") as file:
                # a line still being appended has no newline yet: it is not there
                return [json.loads(line) for line in file if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def _write_file(self, name: str, data: bytes) -> None:
        """A temporary file renamed into place: readers see the old file or the new, never half."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as file:
            file.write(data)
        os.replace(file.name, target)

    def _read_file(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    # ---- trials -----------------------------------------------------------------
    def start_trial(self, record: Mapping[str, Any]) -> int:
        start = {field: record.get(field) for field in START_FIELDS}
        with self._lock(), open(self.path / "trials.jsonl", "a+", encoding="utf-8") as file:
            file.seek(0)
            trial_id = sum(1 for _ in file) + 1  # line n is trial n: every id has its record
            file.write(json.dumps({"trial_id": trial_id, **start}) + "\n")
        return trial_id

    def finish_trial(self, trial_id: int, outcome: Mapping[str, Any]) -> None:
        row = {field: outcome.get(field) for field in OUTCOME_FIELDS}
        if row["result_pickle"] is not None:  # the one bytes field: base64 text in JSON
            row["result_pickle"] = base64.b64encode(row["result_pickle"]).decode()
        self._append("outcomes.jsonl", {"trial_id": trial_id, **row})

    def beat(self, trial_ids: Sequence[int], timestamp: float) -> None:
        for trial_id in trial_ids:  # a running trial's sign of life: the newest line wins
            self._append("heartbeats.jsonl", {"trial_id": trial_id, "heartbeat": timestamp})

    def last_trial_id(self) -> int:
        return len(self._read_lines("trials.jsonl"))

    def load_trials(self, trial_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        wanted = None if trial_ids is None else set(trial_ids)
        records = {start["trial_id"]: {**empty_record(start["trial_id"]), **start}
                   for start in self._read_lines("trials.jsonl") if wanted is None or start["trial_id"] in wanted}
        for outcome in self._read_lines("outcomes.jsonl"):
            record = records.get(outcome["trial_id"])
            if record is not None:
                record.update(outcome)
                if outcome["result_pickle"] is not None:
                    record["result_pickle"] = base64.b64decode(outcome["result_pickle"])
        for beat in self._read_lines("heartbeats.jsonl"):
            if beat["trial_id"] in records:
                records[beat["trial_id"]]["heartbeat"] = beat["heartbeat"]
        return [records[trial_id] for trial_id in sorted(records)]

    # ---- metrics --------------------------------------------------------------------
    def save_metrics(self, trial_id: int, key: str, epochs: NDArray[Any], values: NDArray[Any]) -> None:
        self._append("metrics.jsonl", {"trial_id": trial_id, "key": key, "epochs": epochs.tolist(),
                                       "values": values.tolist()})

    def load_metrics(self, key: str, trial_ids: Iterable[int]) -> dict[int, MetricSeries]:
        wanted = set(trial_ids)
        epochs: dict[int, list[float]] = {}
        values: dict[int, list[float]] = {}
        for batch in self._read_lines("metrics.jsonl"):
            if batch["key"] == key and batch["trial_id"] in wanted:
                epochs.setdefault(batch["trial_id"], []).extend(batch["epochs"])
                values.setdefault(batch["trial_id"], []).extend(batch["values"])
        # JSON keeps 3 and 3.0 apart, so integer epochs and values come back as int64
        return {trial_id: MetricSeries(np.array(epochs[trial_id]), np.array(values[trial_id]))
                for trial_id in epochs}

    def metric_keys(self, trial_id: int | None = None) -> list[str]:
        return sorted({batch["key"] for batch in self._read_lines("metrics.jsonl")
                       if trial_id is None or batch["trial_id"] == trial_id})

    # ---- persisted results and documents ----------------------------------------------
    def save_persisted(self, step: str, trial_id: int, data: bytes) -> None:
        self._write_file(f"persisted/{trial_id}/{quote(step, safe='')}.pkl", data)

    def load_persisted(self, step: str, trial_id: int) -> bytes | None:
        return self._read_file(f"persisted/{trial_id}/{quote(step, safe='')}.pkl")

    def save_document(self, kind: str, digest: str, document: Mapping[str, Any]) -> None:
        self._write_file(f"documents/{quote(kind, safe='')}/{quote(digest, safe='')}.json",
                         json.dumps(document).encode())

    def load_document(self, kind: str, digest: str) -> dict[str, Any] | None:
        data = self._read_file(f"documents/{quote(kind, safe='')}/{quote(digest, safe='')}.json")
        document: dict[str, Any] | None = None if data is None else json.loads(data)
        return document

    # ---- step cache (optional) ----------------------------------------------------------
    supports_cache = True

    def _cache_name(self, digest: str) -> str:
        return f"stepcache/{quote(digest, safe='')}.pkl"

    def save_cached(self, digest: str, data: bytes) -> None:
        self._write_file(self._cache_name(digest), data)

    def load_cached(self, digest: str) -> bytes | None:
        path = self.path / self._cache_name(digest)
        try:
            data = path.read_bytes()
            os.utime(path)  # the file's modification time is its last use
        except FileNotFoundError:
            return None
        return data

    def cached_entries(self) -> list[CacheEntry]:
        try:
            files = list(os.scandir(self.path / "stepcache"))
        except FileNotFoundError:
            return []
        entries = []
        for file in files:
            if file.name.endswith(".pkl"):  # not a temporary file being written
                try:
                    stat = file.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                entries.append(CacheEntry(unquote(file.name[:-4]), stat.st_size, stat.st_mtime))
        return entries

    def delete_cached(self, digests: Iterable[str]) -> None:
        for digest in digests:
            (self.path / self._cache_name(digest)).unlink(missing_ok=True)

    # ---- purity --------------------------------------------------------------------------
    def swap_step_hashes(self, entries: list[tuple[str, str, str]]) -> list[str | None]:
        previous: list[str | None] = []
        with self._lock():
            data = self._read_file("step_hashes.json")
            steps: dict[str, dict[str, str]] = json.loads(data) if data else {}
            for step, input_hash, output_hash in entries:  # a later entry sees an earlier one
                known = steps.setdefault(step, {})
                previous.append(known.pop(input_hash, None))
                known[input_hash] = output_hash  # (re)inserted last: the dict is oldest first
            bounded = {step: dict(list(known.items())[-STEP_HASH_LIMIT:]) for step, known in steps.items()}
            self._write_file("step_hashes.json", json.dumps(bounded).encode())
        return previous
