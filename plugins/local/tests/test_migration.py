"""Databases written by earlier versions open, and are brought up to date, without losing anything."""

from __future__ import annotations

import sqlite3

from daskperiment_local import LocalBackend

OLD_SCHEMA = """
CREATE TABLE trials (
    trial_id INTEGER PRIMARY KEY, parameters TEXT, seed INTEGER, started REAL, code TEXT,
    environment TEXT, host TEXT, pid INTEGER, finished REAL, process_time REAL, success INTEGER,
    result TEXT, result_pickle BLOB, result_type TEXT, description TEXT, traceback TEXT);
CREATE TABLE step_hashes (
    step TEXT NOT NULL, input_hash TEXT NOT NULL, output_hash TEXT NOT NULL, UNIQUE (step, input_hash));
CREATE INDEX step_hashes_recency ON step_hashes (step);
INSERT INTO trials (parameters, seed, success, result) VALUES ('{"a": 1}', 7, 1, '2');
INSERT INTO step_hashes VALUES ('f', 'in1', 'out1');
"""


def test_an_old_database_gains_the_new_columns_and_keeps_its_purity_record(tmp_path):
    directory = tmp_path / "old"
    directory.mkdir()
    with sqlite3.connect(directory / "old.sqlite3") as conn:
        conn.executescript(OLD_SCHEMA)
    backend = LocalBackend("old", directory)
    record = backend.load_trials([1])[0]
    assert record["parameters"] == {"a": 1} and record["result"] == 2 and record["sweep"] is None
    assert backend.swap_step_hashes([("f", "in1", "out2")]) == ["out1"]
    trial_id = backend.start_trial({"parameters": {}, "sweep": "s1", "result_step": "f"})
    assert backend.load_trials([trial_id])[0]["sweep"] == "s1"
    tables = {row[0] for row in sqlite3.connect(directory / "old.sqlite3").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "step_hashes" not in tables and "purity" in tables
