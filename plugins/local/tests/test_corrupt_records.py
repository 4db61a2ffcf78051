"""One corrupt or foreign row never makes the history unreadable (issue 15, item 18).

Rows are damaged directly in the SQLite file, as a crashed tool or a hand edit could; the
other trials load and the bad one is reported once, by trial id, as a WARNING.
"""

from __future__ import annotations

import logging
import sqlite3

import pytest

import daskperiment
from daskperiment.testing.faults import check_reported_once, doubling_experiment


def _experiment(tmp_path):
    ex, _ = doubling_experiment(tmp_path / "store", [1, 2, 3, 4])
    return ex


def test_malformed_rows_are_reported_once_and_the_rest_loads(tmp_path, caplog):
    ex = _experiment(tmp_path)
    db = sqlite3.connect(tmp_path / "store" / "corrupt.sqlite3")
    db.execute("UPDATE trials SET parameters = '{\"a\": 2' WHERE trial_id = 2")  # truncated JSON
    db.execute("UPDATE trials SET result = '1,2', success = 'yes', finished = 'noon' WHERE trial_id = 3")
    db.execute("UPDATE trials SET result_file = '../../etc/passwd', result_encoding = 'npy' WHERE trial_id = 4")
    db.commit()
    db.close()
    caplog.set_level(logging.WARNING, logger="daskperiment")
    history = ex.get_history()
    assert list(history.index) == [1, 2, 3, 4]
    assert history.loc[1, "a"] == 1 and history.loc[4, "a"] == 4 and history.loc[4, "Result"] == 8
    assert history.loc[1, "Result"] == 2 and history.loc[4, "Success"]
    assert ex.get_history().shape == history.shape  # read again: not reported again
    assert ex.get_parameters(trial_id=3) == {"a": 3}
    assert ex.get_parameters(trial_id=2) == {}
    assert ex.get_result(2) == 4 and ex.get_result(3) is None
    with pytest.raises(daskperiment.errors.PayloadError, match="trial 4: its record says it is stored as 'npy' but"):
        ex.get_result(4)
    check_reported_once(caplog, {2: "parameters is not JSON", 3: "result is not JSON",
                                 4: "result_file '../../etc/passwd' is not under results/"})


def test_a_foreign_row_without_an_integer_id_is_skipped(tmp_path, caplog):
    ex = _experiment(tmp_path)
    db = sqlite3.connect(tmp_path / "store" / "corrupt.sqlite3")
    db.execute("INSERT INTO trials (trial_id, parameters) VALUES (5, '[1, 2]')")  # not a dict of parameters
    db.commit()
    db.close()
    caplog.set_level(logging.WARNING, logger="daskperiment")
    history = ex.get_history()
    assert list(history.index) == [1, 2, 3, 4, 5] and history["a"].tolist()[:4] == [1, 2, 3, 4]
    check_reported_once(caplog, {5: "parameters holds list"}, sound=[1, 2, 3, 4])
