"""Backend conformance suite: one set of tests every storage backend must pass.

Use it from a backend's own test module (about 15 lines)::

    import pytest
    from daskperiment.testing.backend import BackendTests

    class TestMyBackend(BackendTests):
        @pytest.fixture
        def make_backend(self, tmp_path):
            # return a callable: experiment id -> a backend on fresh, empty storage
            return lambda experiment_id: MyBackend(experiment_id, f"my://{tmp_path}")

Set ``capabilities`` to skip what a backend cannot do (SQLAlchemy's
``Requirements`` idea). Each test's docstring names the guarantee it protects.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import multiprocessing
import os
import pathlib
import pickle
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from ..backends import HISTORY_FIELDS, STEP_HASH_LIMIT, Backend


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports; tests for the rest are skipped with a reason."""

    #: several OS processes write one experiment at once
    concurrent_processes: bool = True
    #: ``Backend.beat`` stores heartbeats (without it, trials running on other hosts read as
    #: abandoned once ``DASKPERIMENT_HEARTBEAT_TIMEOUT`` has passed)
    heartbeats: bool = True
    #: bytes of the large values :meth:`BackendTests.test_large_values_round_trip` stores: above
    #: the size a backend keeps inline or in one piece (set the backend's limit low in its fixture)
    large_value_bytes: int = 3 * (1 << 20) + 1


def _record(**overrides: Any) -> dict[str, Any]:
    record = {"parameters": {"a": 1, "b": 2.5, "name": "x"}, "seed": 7, "started": 1_700_000_000.5,
              "code": "c0de", "environment": "e4v", "host": "h", "pid": 1}
    record.update(overrides)
    return record


def _outcome(**overrides: Any) -> dict[str, Any]:
    outcome = {"finished": 1_700_000_001.25, "process_time": 0.75, "success": True, "result": 3.5,
               "result_pickle": None, "result_type": "<class 'float'>", "description": None,
               "traceback": None}
    outcome.update(overrides)
    return outcome


def _start_trials_in_process(args: tuple[Backend, int]) -> list[int]:
    backend, n = args
    ids = [backend.start_trial(_record(pid=i)) for i in range(n)]
    for trial_id in ids:
        backend.finish_trial(trial_id, _outcome(result=trial_id))
    return ids


class BackendTests:
    """Subclass and provide the ``make_backend`` fixture."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    @pytest.fixture
    def make_backend(self) -> Callable[[str], Backend]:
        raise NotImplementedError("override make_backend in the backend's test class")

    @pytest.fixture
    def backend(self, make_backend: Callable[[str], Backend]) -> Iterator[Backend]:
        backend = make_backend("conformance")
        yield backend
        backend.close()

    # ---- identity ------------------------------------------------------
    def test_repr_names_class_and_uri(self, backend: Backend) -> None:
        """repr shows ``ClassName('uri')`` as the Experiment repr embeds it."""
        assert repr(backend) == f"{type(backend).__name__}({backend.uri!r})"

    def test_backend_pickles_and_reconnects(self, backend: Backend) -> None:
        """Dask ships backends to workers: a copy must see and write the same data."""
        trial_id = backend.start_trial(_record())
        clone = pickle.loads(pickle.dumps(backend))
        assert clone.last_trial_id() == trial_id
        clone.finish_trial(trial_id, _outcome())
        assert backend.load_trials([trial_id])[0]["success"] is True
        clone.close()

    # ---- trials -----------------------------------------------------------
    def test_empty_experiment(self, backend: Backend) -> None:
        """A new experiment has no trials, metrics or documents."""
        assert backend.last_trial_id() == 0
        assert backend.load_trials() == []
        assert backend.metric_keys() == []
        assert backend.load_document("code", "missing") is None
        assert backend.load_persisted("step", 1) is None

    def test_trial_ids_start_at_one_and_increase(self, backend: Backend) -> None:
        """Ids are 1, 2, 3 … in allocation order and last_trial_id follows."""
        assert [backend.start_trial(_record()) for _ in range(3)] == [1, 2, 3]
        assert backend.last_trial_id() == 3

    def test_trial_record_round_trip(self, backend: Backend) -> None:
        """Every field comes back with its type: ints stay ints, floats floats, bytes bytes."""
        trial_id = backend.start_trial(_record(parameters={"a": 1, "lr": 0.1, "s": "x", "l": [1, 2],
                                                           "d": {"k": None}, "flag": True}))
        backend.finish_trial(trial_id, _outcome(result={"acc": 0.5}, result_pickle=b"\x80\x05blob",
                                                result_type="<class 'dict'>"))
        (record,) = backend.load_trials([trial_id])
        assert record["trial_id"] == trial_id
        assert record["parameters"] == {"a": 1, "lr": 0.1, "s": "x", "l": [1, 2], "d": {"k": None},
                                        "flag": True}
        assert type(record["parameters"]["a"]) is int and type(record["parameters"]["flag"]) is bool
        assert record["seed"] == 7 and record["code"] == "c0de" and record["environment"] == "e4v"
        assert record["started"] == pytest.approx(1_700_000_000.5)
        assert record["finished"] == pytest.approx(1_700_000_001.25)
        assert record["process_time"] == pytest.approx(0.75)
        assert record["success"] is True
        assert record["result"] == {"acc": 0.5}
        assert record["result_pickle"] == b"\x80\x05blob"
        assert record["result_type"] == "<class 'dict'>"

    def test_failed_trial_keeps_description_and_traceback(self, backend: Backend) -> None:
        """A failure is a record like any other, with its cause."""
        trial_id = backend.start_trial(_record())
        backend.finish_trial(trial_id, _outcome(success=False, result=None, result_type=None,
                                                description="ZeroDivisionError(division by zero)",
                                                traceback="Traceback …\nZeroDivisionError"))
        (record,) = backend.load_trials([trial_id])
        assert record["success"] is False
        assert record["description"] == "ZeroDivisionError(division by zero)"
        assert "ZeroDivisionError" in record["traceback"]

    def test_unfinished_trial_reads_as_not_finished(self, backend: Backend) -> None:
        """A trial whose process died shows no outcome but keeps its parameters."""
        backend.start_trial(_record())
        (record,) = backend.load_trials()
        assert record["finished"] is None and record["success"] is None
        assert record["parameters"]["a"] == 1

    def test_load_trials_selects_and_sorts(self, backend: Backend) -> None:
        """load_trials(ids) returns just those trials, sorted by id; unknown ids are absent."""
        for _ in range(5):
            backend.start_trial(_record())
        assert [r["trial_id"] for r in backend.load_trials([4, 2, 99])] == [2, 4]
        assert [r["trial_id"] for r in backend.load_trials()] == [1, 2, 3, 4, 5]

    @pytest.mark.parametrize("fields", [HISTORY_FIELDS, ("trial_id", "parameters", "success", "result")],
                             ids=["all", "some"])
    def test_load_history_matches_load_trials(self, backend: Backend, fields: tuple[str, ...]) -> None:
        """The columnar history holds (at least) the asked fields, one value per trial, as load_trials."""
        assert all(backend.load_history(fields).get(f, []) == [] for f in fields)
        done = backend.start_trial(_record(parameters={"a": 1, "flag": True}))
        backend.finish_trial(done, _outcome(result={"acc": 0.5}))
        backend.start_trial(_record(parameters={"b": "x"}))  # still running
        failed = backend.start_trial(_record())
        backend.finish_trial(failed, _outcome(success=False, result=None, description="ValueError(x)"))
        columns = backend.load_history(fields)
        records = backend.load_trials()
        for field in fields:
            assert columns[field] == [r[field] for r in records], field
        assert [type(s) for s in columns["success"]] == [bool, type(None), bool]

    def test_trial_ids_are_unique_under_threads(self, backend: Backend) -> None:
        """Nothing lost: 8 threads × 25 trials get 200 distinct ids and 200 records."""
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = [i for chunk in pool.map(lambda _: [backend.start_trial(_record()) for _ in range(25)],
                                           range(8)) for i in chunk]
        assert sorted(ids) == list(range(1, 201))
        assert len(backend.load_trials()) == 200

    def test_start_trials_batch(self, backend: Backend) -> None:
        """A batch start (a sweep) gives one new id per record, in order, each record stored as given,
        and interleaves safely with single starts from other threads."""
        assert backend.start_trials([]) == []
        first = backend.start_trial(_record())
        batch = [_record(seed=i, sweep="s-1", shared_steps="load,prepare" if i else None) for i in range(5)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            started = pool.map(lambda _: backend.start_trial(_record(sweep=None)), range(20))
            ids = backend.start_trials(batch)
            singles = list(started)
        assert len(set(ids)) == 5 and ids == sorted(ids) and first not in ids
        assert sorted([first, *ids, *singles]) == list(range(1, 27))
        records = {r["trial_id"]: r for r in backend.load_trials(ids)}
        assert [records[i]["seed"] for i in ids] == list(range(5))
        assert {records[i]["sweep"] for i in ids} == {"s-1"}
        assert [records[i]["shared_steps"] for i in ids] == [None, *["load,prepare"] * 4]

    def test_trial_ids_are_unique_across_processes(self, backend: Backend) -> None:
        """Nothing lost: 4 processes writing one experiment get distinct ids, all records kept."""
        if not self.capabilities.concurrent_processes:
            pytest.skip("backend does not support concurrent processes")
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(4, mp_context=ctx) as pool:
            chunks = list(pool.map(_start_trials_in_process, [(backend, 15)] * 4))
        ids = sorted(i for chunk in chunks for i in chunk)
        assert ids == list(range(1, 61))
        records = backend.load_trials()
        assert [r["result"] for r in records] == list(range(1, 61))

    # ---- importing (copying experiments) ---------------------------------------------
    def test_import_trial_keeps_ids_and_records(self, backend: Backend) -> None:
        """import_trial stores whole records under their own ids; importing again changes nothing."""
        records = [{"trial_id": 1, **_record(), **_outcome(result=1)},
                   {"trial_id": 2, **_record(parameters={"lr": 0.5}), **dict.fromkeys(_outcome())},
                   {"trial_id": 3, **_record(), **_outcome(success=False, result=None, description="E(x)",
                                                           traceback="tb", result_pickle=b"\x80p")}]
        for _ in range(2):
            for record in records:
                backend.import_trial(record)
        loaded = backend.load_trials()
        assert [r["trial_id"] for r in loaded] == [1, 2, 3]
        for got, want in zip(loaded, records):
            got["result_pickle"] = None if got["result_pickle"] is None else bytes(got["result_pickle"])
            assert {f: got.get(f) for f in want} == want
        assert backend.last_trial_id() == 3
        assert backend.start_trial(_record()) == 4

    def test_import_trial_completes_an_unfinished_trial(self, backend: Backend) -> None:
        """Re-importing a trial that has finished meanwhile stores its outcome (resumed copies)."""
        backend.import_trial({"trial_id": 1, **_record()})
        assert backend.load_trials()[0]["success"] is None
        backend.import_trial({"trial_id": 1, **_record(), **_outcome(result=7)})
        (record,) = backend.load_trials()
        assert record["success"] is True and record["result"] == 7

    # ---- metrics ---------------------------------------------------------------
    def test_metrics_round_trip_in_order(self, backend: Backend) -> None:
        """Batches append in order; int epochs stay ints; values are float64."""
        backend.save_metrics(1, "loss", np.arange(3, dtype=np.int64), np.array([0.5, 0.25, 0.125]))
        backend.save_metrics(1, "loss", np.arange(3, 5, dtype=np.int64), np.array([0.1, 0.05]))
        backend.save_metrics(2, "loss", np.array([0.5, 1.5]), np.array([1.0, 2.0]))
        series = backend.load_metrics("loss", [1, 2, 3])
        assert set(series) == {1, 2}
        np.testing.assert_array_equal(series[1].epochs, [0, 1, 2, 3, 4])
        assert series[1].epochs.dtype.kind == "i"
        np.testing.assert_array_equal(series[1].values, [0.5, 0.25, 0.125, 0.1, 0.05])
        np.testing.assert_array_equal(series[2].epochs, [0.5, 1.5])
        assert series[2].values.dtype == np.float64

    def test_integer_metric_values_stay_integers(self, backend: Backend) -> None:
        """int64 values come back as int64 (exactly, beyond 2**53 too); float64 batches as float64."""
        big = 2**62 + 1
        backend.save_metrics(1, "count", np.arange(2, dtype=np.int64), np.array([3, big], dtype=np.int64))
        backend.save_metrics(1, "ratio", np.arange(2, dtype=np.int64), np.array([0.5, 1.0]))
        counts = backend.load_metrics("count", [1])[1]
        assert counts.values.dtype.kind == "i" and counts.values.tolist() == [3, big]
        assert backend.load_metrics("ratio", [1])[1].values.dtype == np.float64

    def test_metric_keys(self, backend: Backend) -> None:
        """Keys are listed per trial and overall, sorted."""
        backend.save_metrics(1, "b", np.arange(1), np.ones(1))
        backend.save_metrics(2, "a", np.arange(1), np.ones(1))
        assert backend.metric_keys() == ["a", "b"]
        assert backend.metric_keys(1) == ["b"]

    def test_many_metric_points(self, backend: Backend) -> None:
        """A million points in batches come back complete and in order."""
        n, batch = 1_000_000, 250_000
        for start in range(0, n, batch):
            backend.save_metrics(1, "m", np.arange(start, start + batch, dtype=np.int64),
                                 np.arange(start, start + batch, dtype=np.float64) / 2)
        series = backend.load_metrics("m", [1])[1]
        assert len(series.epochs) == n
        np.testing.assert_array_equal(series.values[-3:], np.array([n - 3, n - 2, n - 1]) / 2)

    # ---- persisted results, documents, code ----------------------------------------
    def test_persisted_round_trip(self, backend: Backend) -> None:
        """Persisted bytes come back exactly, per step and trial; overwrite allowed."""
        blob = bytes(range(256)) * 100
        backend.save_persisted("prepare", 1, blob)
        backend.save_persisted("prepare", 2, b"two")
        backend.save_persisted("prepare", 2, b"two again")
        assert backend.load_persisted("prepare", 1) == blob
        assert backend.load_persisted("prepare", 2) == b"two again"
        assert backend.load_persisted("other", 1) is None

    def test_metric_summaries_match_the_points(self, backend: Backend) -> None:
        """metric_summaries gives each trial's last, lowest and highest point (NaN ignored), over batches."""
        backend.save_metrics(1, "m", np.array([0, 1]), np.array([3.0, 1.0]))
        backend.save_metrics(2, "m", np.array([0]), np.array([np.nan]))
        backend.save_metrics(1, "m", np.array([2, 3]), np.array([np.nan, 2.0]))
        backend.save_metrics(3, "other", np.array([0]), np.array([5.0]))
        for i in range(3):
            backend.start_trial(_record())
        summaries = backend.metric_summaries("m")
        assert summaries.trial_ids.tolist() == [1, 2]
        assert (summaries.last[0], summaries.low[0], summaries.high[0]) == (2.0, 1.0, 3.0)
        assert np.isnan([summaries.last[1], summaries.low[1], summaries.high[1]]).all()
        assert backend.metric_summaries("m", [2, 3]).trial_ids.tolist() == [2]
        assert len(backend.metric_summaries("absent").trial_ids) == 0
        backend.save_metrics(3, "m", np.array([0, 1]), np.array([7, -2], dtype=np.int64))  # integer values
        summaries = backend.metric_summaries("m", [3])
        assert (summaries.last[0], summaries.low[0], summaries.high[0]) == (-2, -2, 7)

    def test_persisted_sizes_list_without_loading(self, backend: Backend) -> None:
        """persisted_sizes names each step persisted in a trial with its size in bytes."""
        backend.save_persisted("prepare", 1, b"x" * 1000)
        backend.save_persisted("model", 1, b"abc")
        backend.save_persisted("prepare", 2, b"other trial")
        assert backend.persisted_sizes(1, ["prepare", "model", "absent"]) == {"prepare": 1000, "model": 3}
        assert backend.persisted_sizes(3, ["prepare"]) == {}

    def test_large_values_round_trip(self, backend: Backend) -> None:
        """Results and persisted results of any size are stored (outside the metadata) and come back;
        an overwrite by a small value replaces a large one."""
        size = self.capabilities.large_value_bytes
        data = os.urandom(size)
        trial_id = backend.start_trial(_record())
        backend.finish_trial(trial_id, _outcome(result="<array>", result_pickle=data, result_encoding="npy"))
        backend.save_persisted("big", trial_id, data)
        (record,) = backend.load_trials([trial_id])
        assert bytes(record["result_pickle"]) == data and record["result_encoding"] == "npy"
        assert backend.load_persisted("big", trial_id) == data
        assert backend.load_history(HISTORY_FIELDS)["result"] == ["<array>"]
        backend.save_persisted("big", trial_id, b"small")
        backend.finish_trial(trial_id, _outcome(result=1, result_pickle=None, result_encoding="json"))
        assert backend.load_persisted("big", trial_id) == b"small"
        assert backend.load_trials([trial_id])[0]["result_pickle"] is None

    # ---- heartbeats --------------------------------------------------------------------
    def test_heartbeat_is_stored(self, backend: Backend) -> None:
        """beat() refreshes running trials' ``heartbeat`` in one call; other trials keep theirs."""
        if not self.capabilities.heartbeats:
            pytest.skip(f"{type(backend).__name__} stores no heartbeats yet (Capabilities.heartbeats=False)")
        first, second, third = (backend.start_trial(_record(heartbeat=1_700_000_000.5)) for _ in range(3))
        backend.beat([first, third], 1_700_000_100.25)
        records = {r["trial_id"]: r for r in backend.load_trials()}
        assert records[first]["heartbeat"] == records[third]["heartbeat"] == pytest.approx(1_700_000_100.25, abs=1e-3)
        assert records[second]["heartbeat"] == pytest.approx(1_700_000_000.5, abs=1e-3)
        backend.beat([], 1_700_000_200.0)  # nothing running: nothing written
        backend.finish_trial(first, _outcome())
        assert backend.load_trials([first])[0]["heartbeat"] == pytest.approx(1_700_000_100.25, abs=1e-3)

    # ---- read-only views (the dashboard) ------------------------------------------------
    def test_read_only_view_reads_everything(self, backend: Backend) -> None:
        """read_only() sees what the writer stored, including a trial still running."""
        first = backend.start_trial(_record())
        backend.finish_trial(first, _outcome())
        running = backend.start_trial(_record(pid=2))
        backend.save_metrics(first, "loss", np.array([0, 1]), np.array([0.5, 0.25]))
        backend.save_document("code", "c0de", {"steps": {"f": "def f(): pass\n"}})
        view = backend.read_only()
        assert view.last_trial_id() == running
        assert view.load_trials() == backend.load_trials()
        assert view.load_history(HISTORY_FIELDS)["trial_id"] == [first, running]
        assert view.metric_keys() == ["loss"]
        np.testing.assert_array_equal(view.load_metrics("loss", [first])[first].values, [0.5, 0.25])
        assert view.load_document("code", "c0de") == {"steps": {"f": "def f(): pass\n"}}
        backend.finish_trial(running, _outcome())
        assert view.load_trials([running])[0]["success"] is True  # a long-lived view sees new data

    def test_read_only_view_of_an_empty_experiment(self, make_backend: Callable[[str], Backend]) -> None:
        """A view of an experiment nobody wrote reads as empty (and creates nothing to say so)."""
        view = make_backend("never_written").read_only()
        assert view.last_trial_id() == 0
        assert view.load_trials() == []
        assert view.metric_keys() == []
        assert view.load_document("code", "x") is None
        view.close()

    def test_experiment_ids_lists_this_experiment(self, backend: Backend) -> None:
        """experiment_ids() includes an experiment once it has a trial (the dashboard's index)."""
        backend.finish_trial(backend.start_trial(_record()), _outcome())
        assert backend.experiment_id in backend.experiment_ids()
        assert backend.experiment_id in backend.read_only().experiment_ids()

    def test_documents_are_content_addressed(self, backend: Backend) -> None:
        """Documents round-trip as plain data; saving a digest twice is harmless."""
        doc = {"steps": {"f": "def f():\n    return 1\n"}, "n": 1, "nested": {"l": [1, "x", None]}}
        backend.save_document("code", "abc", doc)
        backend.save_document("code", "abc", doc)
        assert backend.load_document("code", "abc") == doc
        assert backend.load_document("environment", "abc") is None

    def test_export_code_is_optional(self, backend: Backend) -> None:
        """export_code exists on every backend (a no-op where files make no sense)."""
        backend.export_code(1, "def f():\n    pass\n")

    # ---- purity -----------------------------------------------------------------------
    def test_step_cache_round_trip_and_eviction_support(self, backend: Backend) -> None:
        """With ``supports_cache``: entries are content-addressed bytes, listed with sizes, marked
        used on load (least-recently-used eviction), and deleted by digest. Large outputs too."""
        if not backend.supports_cache:
            pytest.skip(f"{type(backend).__name__} does not implement the step cache")
        assert backend.load_cached("d0") is None and backend.cached_entries() == []
        big = bytes(range(256)) * (5 * 2**20 // 256)  # 5 MiB: backends that chunk must chunk
        backend.save_cached("d1", b"one")
        backend.save_cached("d2", big)
        backend.save_cached("d1", b"one")  # idempotent
        assert backend.load_cached("d1") == b"one" and bytes(backend.load_cached("d2") or b"") == big
        entries = {e.digest: e for e in backend.cached_entries()}
        assert {d: e.size for d, e in entries.items()} == {"d1": 3, "d2": len(big)}
        time.sleep(0.02)
        backend.load_cached("d1")
        assert {e.digest: e for e in backend.cached_entries()}["d1"].last_used > entries["d1"].last_used
        backend.delete_cached(["d2", "missing"])
        assert backend.load_cached("d2") is None
        assert [e.digest for e in backend.cached_entries()] == ["d1"]

    def test_step_hashes_swap(self, backend: Backend) -> None:
        """The previous output hash for the same input comes back; new inputs give None."""
        assert backend.swap_step_hashes([("f", "in1", "out1"), ("g", "in1", "x")]) == [None, None]
        assert backend.swap_step_hashes([("f", "in1", "out2"), ("f", "in2", "o")]) == ["out1", None]
        assert backend.swap_step_hashes([("f", "in1", "out2")]) == ["out2"]

    def test_complete_trial_stores_outcome_and_swaps_hashes(self, backend: Backend) -> None:
        """complete_trial = swap_step_hashes + finish_trial (one round trip where the backend can)."""
        backend.swap_step_hashes([("step", "in", "out-1")])
        trial_id = backend.start_trial(_record())
        assert backend.complete_trial(trial_id, _outcome(), [("step", "in", "out-2"), ("new", "x", "y")]) == \
            ["out-1", None]
        (record,) = backend.load_trials([trial_id])
        assert record["success"] is True and record["finished"] is not None
        assert backend.swap_step_hashes([("step", "in", "out-3")]) == ["out-2"]

    def test_complete_trials_batch(self, backend: Backend) -> None:
        """A sweep's end: every outcome stored, hashes swapped in order (a trial sees the ones before it)."""
        backend.swap_step_hashes([("step", "in", "out-0")])
        ids = backend.start_trials([_record(seed=i) for i in range(3)])
        answers = backend.complete_trials([
            (ids[0], _outcome(result=0), [("step", "in", "out-1")]),
            (ids[1], _outcome(success=False, result=None, description="ValueError(x)"), []),
            (ids[2], _outcome(result=2), [("step", "in", "out-2"), ("other", "i", "o")])])
        assert answers == [["out-0"], [], ["out-1", None]]
        records = backend.load_trials(ids)
        assert [r["success"] for r in records] == [True, False, True]
        assert [r["result"] for r in records] == [0, None, 2] and records[1]["description"] == "ValueError(x)"
        assert backend.complete_trials([]) == []

    def test_step_hashes_are_bounded(self, backend: Backend) -> None:
        """The purity record keeps at most STEP_HASH_LIMIT inputs per step (plus slack)."""
        n = STEP_HASH_LIMIT + 2_000
        for start in range(0, n, 1_000):
            backend.swap_step_hashes([("f", f"in{i}", "o") for i in range(start, start + 1_000)])
        # the newest input is remembered, the oldest forgotten
        assert backend.swap_step_hashes([(("f", f"in{n - 1}", "o"))]) == ["o"]
        assert backend.swap_step_hashes([("f", "in0", "o")]) == [None]

    # ---- safety ---------------------------------------------------------------------------
    def test_concurrent_metric_writers(self, backend: Backend) -> None:
        """Threads writing metrics of different trials lose nothing."""
        def write(trial_id: int) -> None:
            for start in range(0, 1_000, 100):
                backend.save_metrics(trial_id, "m", np.arange(start, start + 100, dtype=np.int64),
                                     np.full(100, float(trial_id)))

        threads = [threading.Thread(target=write, args=(t,)) for t in range(1, 7)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        series = backend.load_metrics("m", range(1, 7))
        assert all(len(series[t].values) == 1_000 and (series[t].values == t).all() for t in range(1, 7))


class ExperimentTests:
    """End-to-end checks through the public API on a backend (mix into BackendTests)."""

    def test_quickstart_through_experiment(self, make_backend: Callable[[str], Backend]) -> None:
        """The documented quickstart records trials, metrics and persisted results."""
        from daskperiment import Experiment

        ex = Experiment("conformance_e2e", backend=make_backend("conformance_e2e"))
        a, b = ex.parameter("a"), ex.parameter("b")

        @ex.persist
        def prepare(a: int, b: int) -> int:
            return a + b

        @ex.result
        def score(s: int) -> float:
            for i in range(10):
                ex.save_metric("m", epoch=i, value=i * s)
            return 10 / s

        result = score(prepare(a, b))
        ex.set_parameters(a=1, b=2)
        assert result.compute(seed=1) == pytest.approx(10 / 3)
        ex.set_parameters(a=1, b=-1)
        with pytest.raises(ZeroDivisionError):
            result.compute(seed=1)
        history = ex.get_history()
        assert list(history.index) == [1, 2]
        assert list(history["Success"]) == [True, False]
        assert ex.get_persisted("prepare", 1) == 3
        assert list(ex.load_metric("m", 1)[1]) == [i * 3.0 for i in range(10)]
        assert "def prepare" in ex.get_code(trial_id=1)

    def test_typed_parameters_round_trip(self, make_backend: Callable[[str], Backend]) -> None:
        """Parameter values JSON cannot hold (tuples, datetimes, int keys, numpy scalars …) are stored as
        tagged plain data and come back exactly, from ``get_parameters`` and from the history."""
        import datetime
        import decimal
        import pathlib

        from daskperiment import Experiment

        values = {"pair": (1, (2, "x")), "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 10),
                  "by_int": {1: "x"}, "small": np.float32(0.25), "money": decimal.Decimal("0.10"),
                  "where": pathlib.PurePosixPath("/data/in.csv"), "tags": {"a", "b"}}
        ex = Experiment("conformance_typed", backend=make_backend("conformance_typed"))
        params = {name: ex.parameter(name) for name in values}

        @ex.result
        def count(**given: Any) -> int:
            return len(given)

        ex.set_parameters(**values)
        assert count(**params).compute(seed=1) == len(values)
        stored = ex.get_parameters(trial_id=1)
        assert stored == values and {k: type(v) for k, v in stored.items()} == {k: type(v) for k, v in values.items()}
        row = ex.get_history().loc[1]
        assert row["pair"] == (1, (2, "x")) and row["when"] == values["when"] and row["by_int"] == {1: "x"}


class _Planted:
    """Unpickling it writes a marker file: proof that code from the store ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "code from the store ran"))


class SafeLoadingTests:
    """Nothing from the store is unpickled unless the record says it is a pickle signed with the
    reader's key (mix into BackendTests). Values are planted through the backend's own writes,
    as anyone who can write to a shared store could."""

    @pytest.fixture
    def planted(self, make_backend: Callable[[str], Backend], tmp_path: pathlib.Path) -> Any:
        from daskperiment import Experiment

        marker = tmp_path / "marker"
        backend = make_backend("planted")
        evil = pickle.dumps(_Planted(marker))
        trial_id = backend.start_trial(_record())
        yield Experiment("planted", backend=backend), backend, trial_id, evil, marker
        assert not marker.exists(), "a planted pickle was unpickled"

    def test_plain_result_ignores_planted_bytes(self, planted: Any) -> None:
        """A record saying its result is plain data is answered from ``result``, whatever bytes sit beside it."""
        ex, backend, trial_id, evil, _ = planted
        backend.finish_trial(trial_id, _outcome(result=3.5, result_pickle=evil, result_encoding="json"))
        assert ex.get_result(trial_id) == 3.5

    def test_unsigned_or_foreign_pickles_are_refused(self, planted: Any) -> None:
        """A pickle that is bare, or signed with another key, is refused with the why and the fix."""
        from daskperiment import payloads
        from daskperiment.errors import UntrustedPickleError

        ex, backend, trial_id, evil, _ = planted
        foreign = hmac.new(b"another team's key", evil, hashlib.sha256).digest() + evil
        for body, encoding in ((evil, "pickle"), (foreign, "pickle"), (evil, None)):
            backend.finish_trial(trial_id, _outcome(result="<x>", result_pickle=body, result_encoding=encoding))
            with pytest.raises(UntrustedPickleError, match=f"Refusing to unpickle the result of trial {trial_id}.*"
                                                           f"{payloads.KEY_ENV}"):
                ex.get_result(trial_id)
        for data in (evil, payloads.MAGIC + b"pickle\n" + foreign):
            backend.save_persisted("step", trial_id, data)
            with pytest.raises(UntrustedPickleError, match="persisted result of step 'step'"):
                ex.get_persisted("step", trial_id)

    def test_planted_step_cache_entry_is_not_loaded(self, planted: Any, tmp_path: pathlib.Path) -> None:
        """A step-cache entry replaced by a pickle is not used: the step runs again and rewrites it."""
        from daskperiment import Experiment

        _, backend, _, evil, _ = planted
        if not backend.supports_cache:
            pytest.skip(f"{type(backend).__name__} has no step cache")
        ex = Experiment("planted", backend=backend, cache=True)
        runs: list[int] = []

        @ex.result
        def square(x: int) -> set[int]:
            runs.append(x)
            return {x * x}  # a set: stored as a signed pickle

        assert square(3).compute() == {9} and square(3).compute() == {9} and runs == [3]  # a hit
        for entry in backend.cached_entries():
            backend.delete_cached([entry.digest])
            backend.save_cached(entry.digest, evil)
        assert square(3).compute() == {9} and runs == [3, 3]  # not used: the step ran
        assert square(3).compute() == {9} and runs == [3, 3]  # and its output replaced the entry

    def test_signed_pickles_load(self, planted: Any) -> None:
        """Signed with the reader's key, a pickle loads: the check refuses strangers, not ourselves."""
        from daskperiment import payloads

        ex, backend, trial_id, _, _ = planted
        encoding, body = payloads.encode({1, 2})
        backend.finish_trial(trial_id, _outcome(result="{1, 2}", result_pickle=body, result_encoding=encoding))
        backend.save_persisted("step", trial_id, payloads.pack({3}))
        assert encoding == "pickle" and ex.get_result(trial_id) == {1, 2} and ex.get_persisted("step", trial_id) == {3}


class BackendStateMachineTests:
    """Model-based "nothing lost" check (zarr's stateful idea), mixed into a backend's tests.

    Hypothesis applies random sequences of writes to the backend and to an in-memory
    model, and checks after every step that everything written reads back.
    """

    max_examples: ClassVar[int] = 15

    def test_random_operations_match_a_model(self, make_backend: Callable[[str], Backend]) -> None:
        hypothesis = pytest.importorskip("hypothesis")
        from hypothesis import settings
        from hypothesis import strategies as st
        from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

        counter = iter(range(10**9))

        class Machine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.backend = make_backend(f"stateful{next(counter)}")
                self.trials: dict[int, dict[str, Any]] = {}
                self.metrics: dict[tuple[int, str], list[float]] = {}
                self.persisted: dict[tuple[str, int], bytes] = {}

            @rule(a=st.integers(-10, 10), name=st.text(max_size=5))
            def start(self, a: int, name: str) -> None:
                trial_id = self.backend.start_trial(_record(parameters={"a": a, "name": name}))
                assert trial_id == len(self.trials) + 1
                self.trials[trial_id] = {"parameters": {"a": a, "name": name}, "success": None}

            @precondition(lambda self: self.trials)
            @rule(data=st.data(), ok=st.booleans())
            def finish(self, data: Any, ok: bool) -> None:
                trial_id = data.draw(st.sampled_from(sorted(self.trials)))
                self.backend.finish_trial(trial_id, _outcome(success=ok, result=trial_id if ok else None))
                self.trials[trial_id]["success"] = ok

            @precondition(lambda self: self.trials)
            @rule(data=st.data(), key=st.sampled_from(["loss", "acc"]),
                  values=st.lists(st.floats(allow_nan=False, width=64), min_size=1, max_size=20))
            def metric(self, data: Any, key: str, values: list[float]) -> None:
                trial_id = data.draw(st.sampled_from(sorted(self.trials)))
                series = self.metrics.setdefault((trial_id, key), [])
                epochs = np.arange(len(series), len(series) + len(values), dtype=np.int64)
                self.backend.save_metrics(trial_id, key, epochs, np.array(values, dtype=np.float64))
                series.extend(values)

            @precondition(lambda self: self.trials)
            @rule(data=st.data(), step=st.sampled_from(["f", "g"]), blob=st.binary(max_size=64))
            def persist(self, data: Any, step: str, blob: bytes) -> None:
                trial_id = data.draw(st.sampled_from(sorted(self.trials)))
                self.backend.save_persisted(step, trial_id, blob)
                self.persisted[(step, trial_id)] = blob

            @invariant()
            def everything_reads_back(self) -> None:
                records = self.backend.load_trials()
                assert [r["trial_id"] for r in records] == sorted(self.trials)
                for record in records:
                    expected = self.trials[record["trial_id"]]
                    assert record["parameters"] == expected["parameters"]
                    assert record["success"] == expected["success"]
                for (trial_id, key), values in self.metrics.items():
                    series = self.backend.load_metrics(key, [trial_id])[trial_id]
                    assert series.values.tolist() == values
                for (step, trial_id), blob in self.persisted.items():
                    assert self.backend.load_persisted(step, trial_id) == blob

            def teardown(self) -> None:
                self.backend.close()

        Machine.TestCase.settings = settings(max_examples=self.max_examples, stateful_step_count=15,
                                             deadline=None)
        Machine.TestCase().runTest()
        assert hypothesis
