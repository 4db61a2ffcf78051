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


def test_database_of_an_earlier_version_gains_the_new_columns(tmp_path):
    """A database created before ``trials.sweep`` and ``metrics.value_dtype`` opens, keeps its metrics
    (float64 values, as they were all stored then) and takes integer values from now on."""
    import numpy as np

    from daskperiment_local.backend import LocalBackend

    path = tmp_path / "old"
    path.mkdir()
    db = sqlite3.connect(path / "old.sqlite3")
    db.executescript("""
        CREATE TABLE trials (trial_id INTEGER PRIMARY KEY, parameters TEXT, seed INTEGER, started REAL, code TEXT,
            environment TEXT, host TEXT, pid INTEGER, finished REAL, process_time REAL, success INTEGER,
            result TEXT, result_pickle BLOB, result_type TEXT, description TEXT, traceback TEXT);
        CREATE TABLE metrics (seq INTEGER PRIMARY KEY, trial_id INTEGER NOT NULL, key TEXT NOT NULL,
            epoch_dtype TEXT NOT NULL, epochs BLOB NOT NULL, vals BLOB NOT NULL);
    """)
    db.execute("INSERT INTO metrics (trial_id, key, epoch_dtype, epochs, vals) VALUES (1, 'm', '<i8', ?, ?)",
               (np.array([0], "<i8").tobytes(), np.array([0.5], "<f8").tobytes()))
    db.commit()
    db.close()
    view = LocalBackend("old", path).read_only()  # reading never migrates: the new columns read as NULL
    assert view.load_metrics("m", [1])[1].values.tolist() == [0.5] and view.load_history()["trial_id"] == []
    assert view.metric_summaries("m").last.tolist() == [0.5]
    view.close()
    backend = LocalBackend("old", path)
    backend.save_metrics(1, "m", np.array([1], "<i8"), np.array([7], "<i8"))
    series = backend.load_metrics("m", [1])[1]
    assert series.epochs.tolist() == [0, 1] and series.values.tolist() == [0.5, 7.0]
    backend.save_metrics(2, "n", np.array([1], "<i8"), np.array([7], "<i8"))
    assert backend.load_metrics("n", [2])[2].values.dtype == np.int64


def test_large_metric_batches_are_raw_files_referenced_from_the_database(tmp_path):
    """Batches of FILE_POINTS points or more skip SQLite's page-by-page blob copies: one file of raw
    numbers (epochs, then values), written before the row that references it."""
    import numpy as np

    from daskperiment_local.backend import FILE_POINTS, LocalBackend

    backend = LocalBackend("big", tmp_path / "big")
    epochs = np.arange(FILE_POINTS, dtype=np.int64)
    backend.save_metrics(1, "m", epochs, np.arange(FILE_POINTS, dtype=np.int64) * 3)
    backend.save_metrics(1, "m", np.array([FILE_POINTS]), np.array([0.5]))  # a small batch: in the database
    (file,) = (tmp_path / "big" / "metrics").glob("big_1_*.bin")
    assert file.stat().st_size == FILE_POINTS * 16
    db = sqlite3.connect(tmp_path / "big" / "big.sqlite3")
    assert [row[0] is None for row in db.execute("SELECT file FROM metrics ORDER BY seq")] == [False, True]
    series = backend.load_metrics("m", [1])[1]
    assert series.epochs.tolist() == [*range(FILE_POINTS + 1)]
    assert series.values[:3].tolist() == [0, 3, 6] and series.values[-1] == 0.5
    summaries = backend.metric_summaries("m")
    assert (summaries.last[0], summaries.low[0], summaries.high[0]) == (0.5, 0, (FILE_POINTS - 1) * 3)
