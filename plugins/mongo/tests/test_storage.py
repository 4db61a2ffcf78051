"""What lands in MongoDB: plain BSON metadata, bounded chunks, large data, indexes."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from daskperiment import Experiment
from daskperiment.errors import BackendError
from daskperiment_mongo import backend as backend_module
from daskperiment_mongo.chunks import CHUNK_BYTES

#: categories whose documents may hold raw bytes; everything else is plain data
BINARY_CATEGORIES = {"metric", "blob", "persisted"}


def _walk(value):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def test_metadata_is_plain_bson(mongo_uri, raw_collection):
    """Trials, outcomes, code and environment are ordinary BSON documents: no pickle, no bytes."""
    ex = Experiment("plain", backend=mongo_uri)
    lr, layers = ex.parameter("lr"), ex.parameter("layers")

    @ex.persist
    def prepare(lr, layers):
        return {"lr": lr, "layers": layers}

    @ex.result
    def train(config):
        ex.save_metric("loss", epoch=0, value=0.5)
        return {"acc": 0.9, "layers": config["layers"], "ok": True}

    ex.set_parameters(lr=0.1, layers=[32, 16])
    train(prepare(lr, layers)).compute(seed=3)
    raw = raw_collection("plain")
    docs = list(raw.find())
    categories = {doc["category"] for doc in docs}
    assert {"trial", "outcome", "document", "metric", "persisted"} <= categories
    for doc in docs:
        if doc["category"] not in BINARY_CATEGORIES:
            assert not any(isinstance(v, bytes) for v in _walk(doc)), doc
    trial = raw.find_one({"category": "trial"})
    assert trial["parameters"] == {"lr": 0.1, "layers": [32, 16]} and trial["seed"] == 3
    outcome = raw.find_one({"category": "outcome", "trial_id": 1})
    assert outcome["result"] == {"acc": 0.9, "layers": [32, 16], "ok": True} and outcome["success"] is True
    assert outcome["result_pickle"] is None
    code = raw.find_one({"category": "document", "kind": "code"})
    assert "def train" in code["body"]["steps"]["train"]
    assert trial["_id"] == "trial:1"  # the id is claimed by the trial's own document: no counter


def test_awkward_plain_data_round_trips(make_mongo_backend):
    """Dotted/dollar keys, NaN/inf and integers beyond int64 survive any server."""
    backend = make_mongo_backend("awkward")
    parameters = {"zope.interface": "1.0", "$HOME": "/root", "100%": 1, "%float": 2, "nul\0": 3,
                  "nested": {"a.b": [1, {"c.d": None}]}}
    result = {"loss": math.nan, "best": -math.inf, "big": 2**80, "small": -(2**70), "ok": False}
    trial_id = backend.start_trial({"parameters": parameters, "seed": 1})
    backend.finish_trial(trial_id, {"success": True, "result": result})
    (record,) = backend.load_trials()
    assert record["parameters"] == parameters
    assert math.isnan(record["result"]["loss"]) and record["result"]["best"] == -math.inf
    assert record["result"]["big"] == 2**80 and record["result"]["small"] == -(2**70)
    assert record["result"]["ok"] is False and record["success"] is True
    history = backend.load_history()
    assert history["parameters"] == [parameters] and history["result"][0]["big"] == 2**80
    backend.save_document("environment", "d1", {"packages": {"zope.interface": "6.0"}, "$PATH": "/bin"})
    assert backend.load_document("environment", "d1") == {"packages": {"zope.interface": "6.0"}, "$PATH": "/bin"}


def test_ten_million_metric_points_in_one_trial(make_mongo_backend, raw_collection):
    """Core's batches (262,144 points) become chunk documents of at most CHUNK_BYTES."""
    backend = make_mongo_backend("big_metric")
    n, batch = 10_000_000, 262_144
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        backend.save_metrics(1, "loss", np.arange(start, stop, dtype=np.int64),
                             np.arange(start, stop, dtype=np.float64) * 0.5)
    series = backend.load_metrics("loss", [1])[1]
    assert len(series.epochs) == n and series.epochs.dtype == np.int64
    np.testing.assert_array_equal(series.epochs[::1_000_003], np.arange(0, n, 1_000_003))
    np.testing.assert_array_equal(series.values[-3:], np.array([n - 3, n - 2, n - 1]) * 0.5)
    assert np.all(np.diff(series.epochs) == 1)  # complete and in order
    per_chunk = CHUNK_BYTES // 16
    batches = [min(batch, n - start) for start in range(0, n, batch)]
    raw = raw_collection("big_metric")
    assert raw.count_documents({"category": "metric"}) == sum(-(-b // per_chunk) for b in batches)
    chunk = raw.find_one({"category": "metric", "part": 0})
    assert len(chunk["epochs"]) + len(chunk["values"]) == CHUNK_BYTES


def test_incomplete_metric_batch_is_ignored(make_mongo_backend, raw_collection):
    """A batch cut off by a lost connection (some chunks missing) is invisible, not torn."""
    backend = make_mongo_backend("torn")
    points = CHUNK_BYTES // 16 * 3  # three chunks
    backend.save_metrics(1, "m", np.arange(10), np.ones(10))
    backend.save_metrics(1, "m", np.arange(points), np.zeros(points))
    backend.save_metrics(1, "m", np.arange(10, 20), np.full(10, 2.0))
    raw_collection("torn").delete_one({"category": "metric", "part": 1})
    series = backend.load_metrics("m", [1])[1]
    np.testing.assert_array_equal(series.epochs, np.arange(20))
    np.testing.assert_array_equal(series.values, [1.0] * 10 + [2.0] * 10)


def test_twenty_megabyte_persisted_result(make_mongo_backend, raw_collection):
    """Results above one document go to chunks; an overwrite removes the old chunks."""
    backend = make_mongo_backend("big_persist")
    blob = os.urandom(20 * 2**20)
    backend.save_persisted("prepare", 1, blob)
    assert backend.load_persisted("prepare", 1) == blob
    raw = raw_collection("big_persist")
    chunks = list(raw.find({"category": "blob"}, {"data": True}))
    assert len(chunks) == 20 and max(len(c["data"]) for c in chunks) <= CHUNK_BYTES
    backend.save_persisted("prepare", 1, b"small now")
    assert backend.load_persisted("prepare", 1) == b"small now"
    assert raw.count_documents({"category": "blob"}) == 0


def test_twenty_megabyte_persisted_step_through_experiment(mongo_uri):
    ex = Experiment("persist_e2e", backend=mongo_uri)
    n = ex.parameter("n")

    @ex.persist
    def make(n):
        return np.arange(n, dtype=np.float64)

    @ex.result
    def total(array):
        return float(array.sum())

    ex.set_parameters(n=20 * 2**20 // 8)
    total(make(n)).compute()
    np.testing.assert_array_equal(ex.get_persisted("make", 1), np.arange(20 * 2**20 // 8, dtype=np.float64))
    ex.backend.close()


def test_large_pickled_result(make_mongo_backend):
    """A non-plain trial result larger than a chunk is chunked like a persisted result."""
    backend = make_mongo_backend("big_result")
    pickled = os.urandom(3 * CHUNK_BYTES + 5)
    trial_id = backend.start_trial({"parameters": {}, "seed": 1})
    backend.finish_trial(trial_id, {"success": True, "result": "<big>", "result_pickle": pickled})
    assert backend.load_trials([trial_id])[0]["result_pickle"] == pickled
    assert backend.load_history()["result"] == ["<big>"]


def test_purity_record_is_pruned(make_mongo_backend, raw_collection, monkeypatch):
    """At most STEP_HASH_LIMIT inputs per step are kept (the newest), plus one prune interval."""
    monkeypatch.setattr(backend_module, "STEP_HASH_LIMIT", 100)
    backend = make_mongo_backend("purity")
    for start in range(0, 500, 50):
        backend.swap_step_hashes([("f", f"in{i}", "o") for i in range(start, start + 50)] + [("g", "x", "o")])
    kept = raw_collection("purity").count_documents({"category": "step_hash", "step": "f"})
    assert 100 <= kept <= 100 + backend_module.PRUNE_EVERY
    assert backend.swap_step_hashes([("f", "in499", "o"), ("f", "in0", "o"), ("g", "x", "p")]) == ["o", None, "o"]


def test_indexes_cover_the_lookups(make_mongo_backend, raw_collection):
    """History, metric and purity lookups have compound indexes (checked by keys, not names)."""
    backend = make_mongo_backend("indexed")
    backend.start_trial({"parameters": {}})
    keys = [list(info["key"]) for info in raw_collection("indexed").index_information().values()]
    assert [("category", 1), ("trial_id", 1)] in keys
    assert [("category", 1), ("key", 1), ("trial_id", 1), ("seq", 1), ("batch", 1), ("part", 1)] in keys
    assert [("category", 1), ("step", 1), ("seq", 1)] in keys


@pytest.mark.parametrize("epochs", [np.arange(5, dtype=">i8"), np.arange(5, dtype=np.int32), np.linspace(0, 1, 5)])
def test_metric_epoch_dtypes(make_mongo_backend, epochs):
    backend = make_mongo_backend("dtypes")
    backend.save_metrics(1, "m", epochs, np.arange(5, dtype=">f8"))
    series = backend.load_metrics("m", [1])[1]
    np.testing.assert_array_equal(series.epochs, epochs)
    np.testing.assert_array_equal(series.values, np.arange(5.0))


def test_oversized_plain_result_is_a_clear_error(make_mongo_backend):
    backend = make_mongo_backend("oversized")
    trial_id = backend.start_trial({"parameters": {}})
    with pytest.raises(BackendError, match="16 MB limit.*@ex.persist"):
        backend.finish_trial(trial_id, {"success": True, "result": "x" * (17 * 2**20)})
    backend.finish_trial(trial_id, {"success": True, "result": "small"})
    assert backend.load_trials()[0]["result"] == "small"
