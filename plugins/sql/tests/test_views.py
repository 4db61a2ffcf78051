"""Plain SQL on the documented views: the examples of docs/sql.md run, typed values compare as typed."""

from __future__ import annotations

import datetime
import pathlib
import re

import daskperiment
import numpy as np
import pytest
import sqlalchemy
from daskperiment_sql import SQLBackend

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "sql.md"
TRIALS = [  # lr, epochs, optimizer, augment, data_until
    (0.1, 20, "adam", True, "2024-06-30"),
    (0.001, 20, "sgd", False, "2023-12-31"),
    (0.05, 5, "adam", True, "2024-01-15T08:00:00+02:00"),
    (0.5, 0, "sgd", True, "2024-03-01"),  # epochs=0 fails: ZeroDivisionError
]


def sql_examples() -> list[str]:
    """The queries of docs/sql.md (its other SQL block, the grants, runs in test_readonly.py)."""
    return [block for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.DOTALL) if block.startswith("SELECT")]


def run_mnist(url: str) -> daskperiment.Experiment:
    ex = daskperiment.Experiment("mnist", backend=url)
    lr, epochs, optimizer = ex.parameter("lr"), ex.parameter("epochs"), ex.parameter("optimizer")
    augment, data_until = ex.parameter("augment"), ex.parameter("data_until")

    @ex.result
    def train(lr, epochs, optimizer, augment, data_until):
        for epoch in range(max(epochs, 1)):
            ex.save_metric("loss", epoch=epoch, value=1.0 / (epoch + 1) + lr)
        return 1 - lr / epochs

    result = train(lr, epochs, optimizer, augment, data_until)
    for values in TRIALS:
        ex.set_parameters(**dict(zip(("lr", "epochs", "optimizer", "augment", "data_until"), values)))
        try:
            result.compute(seed=1)
        except ZeroDivisionError:
            pass
    other = daskperiment.Experiment("other", backend=url)  # a second experiment in the same database
    x = other.parameter("x")
    other.set_parameters(x=1)
    other.result(lambda x: x)(x).compute(seed=1)
    return ex


def query(url: str, sql: str) -> list[tuple]:
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def test_the_documentation_has_examples() -> None:
    assert len(sql_examples()) >= 8


@pytest.mark.parametrize("number", range(len(sql_examples())))
def test_documented_example_runs(database_url: str, number: int) -> None:
    """Every SQL example of docs/sql.md runs and returns rows (PostgreSQL-only ones on PostgreSQL)."""
    sql = sql_examples()[number]
    if re.search(r"\bdaskperiment_metrics\b", sql) and not database_url.startswith("postgresql"):
        pytest.skip("the point-by-point metrics view exists on PostgreSQL only")
    run_mnist(database_url)
    rows = query(database_url, sql)
    assert rows, sql


def test_examples_answer_correctly(database_url: str) -> None:
    """The first examples' answers, checked against what the experiment did."""
    run_mnist(database_url)
    best_first = query(database_url, sql_examples()[0])
    assert [row[0] for row in best_first] == [1, 3]  # 0.995, 0.99 (trial 2: lr too small; trial 4 failed)
    pivot = query(database_url, sql_examples()[1])
    assert [(r[0], r[1], r[3], r[5]) for r in pivot] == [(1, "success", 0.1, "adam"), (2, "success", 0.001, "sgd"),
                                                         (3, "success", 0.05, "adam"), (4, "failed", 0.5, "sgd")]
    assert [row[0] for row in query(database_url, sql_examples()[2])] == [1, 3, 4]
    assert [row[0] for row in query(database_url, sql_examples()[3])] == [4]


def test_parameters_are_typed(database_url: str) -> None:
    """Numbers as numbers, text as text, booleans, ISO timestamps; the exact JSON alongside."""
    run_mnist(database_url)
    rows = query(database_url, "SELECT name, kind, value_number, value_text, value_bool, value_time, value_json "
                               "FROM daskperiment_parameters WHERE experiment = 'mnist' AND trial_id = 3 ORDER BY name")
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name["lr"][:2] == ("float", 0.05) and by_name["epochs"][:2] == ("int", 5.0)
    assert by_name["optimizer"][0] == "text" and by_name["optimizer"][2] == "adam"
    assert by_name["augment"][0] == "bool" and bool(by_name["augment"][3]) is True
    when = by_name["data_until"][4]
    if isinstance(when, str):  # SQLite keeps timestamps as ISO text
        when = datetime.datetime.fromisoformat(when)
    assert when == datetime.datetime(2024, 1, 15, 6, 0)  # +02:00 stored in UTC
    assert by_name["epochs"][5] == "5"


def test_trials_view_shows_timestamps_and_status(database_url: str) -> None:
    run_mnist(database_url)
    rows = query(database_url, "SELECT trial_id, status, started, finished, result_json FROM daskperiment_trials "
                               "WHERE experiment = 'mnist' ORDER BY trial_id")
    assert [r[1] for r in rows] == ["success", "success", "success", "failed"]
    started = rows[0][2]
    if isinstance(started, str):
        started = datetime.datetime.fromisoformat(started)
    assert abs(started.timestamp() if started.tzinfo else
               started.replace(tzinfo=datetime.timezone.utc).timestamp()) - 0 > 1e9
    assert rows[3][4] == "null"


def test_postgresql_metrics_view_decodes_every_float(postgresql_url: str) -> None:
    """Big-endian batches decode in SQL exactly: signs, zeros, subnormals, infinities, NaN, big epochs."""
    values = np.array([0.0, -0.0, 1.5, -2.25, 1e-310, -5e-324, np.finfo(float).max, np.inf, -np.inf, np.nan,
                       0.1, 123456.789])
    backend = SQLBackend("special", postgresql_url)
    backend.save_metrics(1, "m", np.arange(len(values), dtype=np.int64) * 2**40, values)
    backend.save_metrics(2, "m", np.array([0.5, -1.25]), np.array([3.0, 4.0]))
    rows = query(postgresql_url, "SELECT trial_id, epoch, value FROM daskperiment_metrics "
                                 "WHERE experiment = 'special' ORDER BY trial_id, batch, point")
    decoded = np.array([r[2] for r in rows[:len(values)]])
    np.testing.assert_array_equal(decoded, values)
    assert np.signbit(decoded[1]) and not np.signbit(decoded[0])
    assert [r[1] for r in rows[:3]] == [0, 2**40, 2 * 2**40]
    assert [(r[0], r[1], r[2]) for r in rows[len(values):]] == [(2, 0.5, 3.0), (2, -1.25, 4.0)]
    backend.close()


def test_experiment_ids_lists_the_database(database_url: str) -> None:
    """The dashboard's index: every experiment of the database with trials."""
    run_mnist(database_url)
    assert SQLBackend("anything", database_url).experiment_ids() == ["mnist", "other"]


def test_unusual_parameter_values_are_typed_alike_on_every_dialect(database_url: str) -> None:
    """Text beyond ASCII, quotes and backslashes, huge and negative numbers, zoned times: the typed
    rows PostgreSQL builds from one JSON text per trial match what the other dialects insert."""
    parameters = {"emoji": "naïve 😀 \"quoted\" back\\slash", "big": 10**300, "tiny": -5e-324, "zero": -0.0,
                  "empty": "", "nested": {"a": [1, None, "x"]}, "none": None, "when": "2024-06-30T12:00:00+02:00",
                  "flag": False, "ünï": 1}
    backend = SQLBackend("odd", database_url)
    trial_id = backend.start_trial({"parameters": parameters})
    rows = {row[0]: row[1:] for row in query(
        database_url, f"SELECT name, kind, value_number, value_text, value_bool, value_time, value_json "
                      f"FROM daskperiment_parameters WHERE experiment = 'odd' AND trial_id = {trial_id}")}
    assert rows["emoji"][:3] == ("text", None, parameters["emoji"])
    assert rows["big"][:2] == ("int", 1e300) and rows["big"][5] == "1" + "0" * 300
    assert rows["tiny"][:2] == ("float", -5e-324) and rows["zero"][:2] == ("float", 0.0)
    assert rows["empty"][:3] == ("text", None, "") and rows["none"][0] == "null"
    assert rows["nested"][0] == "dict" and rows["nested"][5] == '{"a":[1,null,"x"]}'
    assert rows["flag"][0] == "bool" and bool(rows["flag"][3]) is False and rows["ünï"][:2] == ("int", 1.0)
    when = rows["when"][4]
    if isinstance(when, str):  # SQLite keeps timestamps as ISO text
        when = datetime.datetime.fromisoformat(when)
    assert when == datetime.datetime(2024, 6, 30, 10, 0, 0)
    assert backend.load_trials()[0]["parameters"] == parameters
    backend.close()
