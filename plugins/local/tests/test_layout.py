"""LocalBackend specifics: the documented file layout, WAL mode, plain-data metadata."""

from __future__ import annotations

import json
import sqlite3

import daskperiment


def _run(tmp_path):
    ex = daskperiment.Experiment("layout", backend=tmp_path / "store")
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        return {"a": a}

    @ex.result
    def score(p):
        ex.save_metric("loss", epoch=0, value=0.5)
        return p["a"] * 2

    ex.set_parameters(a=21)
    score(prepare(a)).compute(seed=3)
    return ex


def test_documented_layout(tmp_path):
    ex = _run(tmp_path)
    store = tmp_path / "store"
    assert (store / "layout.sqlite3").exists()
    # plain data is stored as JSON behind a header naming its encoding (daskperiment.payloads)
    assert (store / "persist" / "layout_prepare_1.pkl").read_bytes() == b'DPK1:json\n{"a":21}'
    assert (store / "code" / "layout_1.py").read_text() == ex.get_code(trial_id=1)
    env_files = sorted(p.name for p in (store / "environment").iterdir())
    assert any(name.startswith("python_layout_") and name.endswith(".json") for name in env_files)
    python = json.loads(next((store / "environment").glob("python_layout_*.json")).read_text())
    assert python["version"]


def test_wal_mode_and_plain_metadata(tmp_path):
    _run(tmp_path)
    db = sqlite3.connect(tmp_path / "store" / "layout.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    parameters, result, result_pickle = db.execute(
        "SELECT parameters, result, result_pickle FROM trials WHERE trial_id = 1").fetchone()
    assert json.loads(parameters) == {"a": 21} and json.loads(result) == 42 and result_pickle is None
    for (body,) in db.execute("SELECT body FROM documents"):
        json.loads(body)  # every document is JSON text
    dtype, epochs, values = db.execute("SELECT epoch_dtype, epochs, vals FROM metrics").fetchone()
    assert dtype == "<i8" and len(epochs) == 8 and len(values) == 8  # raw numbers, no pickle


def test_no_temporary_files_left_behind(tmp_path):
    _run(tmp_path)
    leftovers = [p for p in (tmp_path / "store").rglob("*.tmp")]
    assert leftovers == []


def test_reading_a_missing_experiment_creates_nothing(tmp_path):
    ex = daskperiment.Experiment("nothing", backend=tmp_path / "empty")
    assert ex.get_history().empty and ex.trial_id == 0
    assert not (tmp_path / "empty").exists()
