"""The original 0.5.0's public behaviour that users migrate from (issue 15, items 1–4, 6, 7, 10).

The facts come from the original's documentation and its own test suite
(``daskperiment/tests/core/experiment/base.py`` of 0.5.0); the bad-input side is in
``test_bad_input.py``.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import gc
import pathlib
import sys

import numpy as np
import pandas as pd
import pandas.testing as tm
import pytest

import daskperiment

PLAIN = ["Result", "Success", "Finished", "Process Time", "Description"]
VERBOSE = ["Seed", "Result", "Result Type", "Success", "Finished", "Process Time", "Description", "Sweep"]  # Sweep: ours, last


class Colour(enum.Enum):
    RED = "red"


def division():
    ex = daskperiment.Experiment("test_failure")
    a = ex.parameter("a")

    @ex.result
    def div(a):
        return 3 / a

    return ex, div(a)


# ---- item 2 and 7: history columns and dtypes ------------------------------------------------------------


def test_history_columns_and_dtypes_as_the_original():
    ex, res = division()
    for a in (1, 2):
        ex.set_parameters(a=a)
        res.compute()
    ex.set_parameters(a=0)
    with pytest.raises(ZeroDivisionError):
        res.compute()
    hist = ex.get_history()
    assert list(hist.columns) == ["a", *PLAIN]
    expected = pd.DataFrame({"a": [1, 2, 0], "Result": [3.0, 1.5, np.nan], "Success": [True, True, False],
                             "Description": [np.nan, np.nan, "ZeroDivisionError(division by zero)"]},
                            index=pd.Index([1, 2, 3], name="Trial ID"))
    tm.assert_frame_equal(hist.drop(["Finished", "Process Time"], axis=1), expected)
    verbose = ex.get_history(verbose=True)
    assert list(verbose.columns) == ["a", *VERBOSE]
    assert verbose["Result Type"].tolist() == ["<class 'float'>", "<class 'float'>", "None"]
    assert verbose["Seed"].dtype == np.int64


def test_all_missing_description_is_float_nan_and_empty_history_has_the_columns():
    ex, res = division()
    empty = ex.get_history()
    assert list(empty.columns) == PLAIN and empty.index.name == "Trial ID" and len(empty) == 0
    assert list(ex.get_history(verbose=True).columns) == VERBOSE
    ex.set_parameters(a=1)
    res.compute()
    assert ex.get_history()["Description"].dtype == np.float64


# ---- item 1: load_metric keeps ints (item 7) and its errors ---------------------------------------------


def test_load_metric_as_the_original():
    ex = daskperiment.Experiment("test_metric")
    a = ex.parameter("a")

    @ex.result
    def inc(a):
        ex.save_metric("dummy_metric", epoch=1, value=2)
        ex.save_metric("dummy_metric", 2, 4)  # positional, as the original allowed
        return a + 1

    ex.set_parameters(a=3)
    assert inc(a).compute() == 4
    expected = pd.DataFrame({1: [2, 4]}, index=pd.Index([1, 2], name="Epoch"),
                            columns=pd.Index([1], name="Trial ID"))
    tm.assert_frame_equal(ex.load_metric("dummy_metric", trial_id=[1]), expected)  # ints stay ints
    tm.assert_frame_equal(ex.load_metric(metric_key="dummy_metric", trial_id=1), expected)
    tm.assert_frame_equal(ex.load_metric("dummy_metric", np.int64(1)), expected)  # e.g. from the history index


def test_save_metrics_arrays_and_duplicate_epochs():
    """Item 10: arrays in one call; points keep their save order, duplicates included; when several
    trials are joined on epoch, the last point saved for an epoch is shown."""
    ex = daskperiment.Experiment("arrays")

    @ex.result
    def log(offset):
        ex.save_metric("m", 0, -1.0)
        ex.save_metrics("m", np.arange(5), np.arange(5) * 0.5 + offset)
        ex.save_metrics("count", [0, 1], [7, 2**62 + 1])  # int64 values beyond 2**53 kept exactly
        return offset

    log(0).compute()
    log(1).compute()
    one = ex.load_metric("m", 1)
    assert one.index.tolist() == [0, 0, 1, 2, 3, 4] and one[1].tolist() == [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    both = ex.load_metric("m", [1, 2])
    assert both.index.tolist() == [0, 1, 2, 3, 4] and both[2].tolist() == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert ex.load_metric("count", 1)[1].tolist() == [7, 2**62 + 1]


# ---- item 3: code ------------------------------------------------------------------------------------------


def test_get_code_separates_steps_with_two_blank_lines():
    ex = daskperiment.Experiment("test_code")
    a = ex.parameter("a")

    @ex
    def inc(a):
        return a + 1

    @ex.result
    def add(a, b):
        return a + b

    expected = "@ex\ndef inc(a):\n    return a + 1\n\n\n@ex.result\ndef add(a, b):\n    return a + b\n"
    assert ex.get_code() == expected
    ex.set_parameters(a=3)
    assert add(inc(a), a).compute() == 7
    assert ex.get_code(trial_id=1) == expected


# ---- item 4: typed parameter values round-trip exactly --------------------------------------------------

TYPED = {
    "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 10),
    "aware": datetime.datetime(2024, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    "day": datetime.date(2024, 5, 6),
    "clock": datetime.time(7, 8, 9),
    "span": datetime.timedelta(days=1, microseconds=3),
    "stamp": pd.Timestamp("2024-05-06 07:08:09.000000001"),
    "stamp_tz": pd.Timestamp("2024-05-06", tz="Europe/Paris"),
    "delta": pd.Timedelta(5, unit="ns"),
    "i32": np.int32(7),
    "f32": np.float32(0.1),
    "flag": np.bool_(True),
    "money": decimal.Decimal("0.10"),
    "where": pathlib.Path("/data/in.csv"),
    "pair": (1, (2, "x")),
    "by_int": {1: "x", (2, 3): [4]},
    "tags": {"b", "a"},
    "frozen": frozenset({1}),
    "colour": Colour.RED,
    "nested": [{"k": (1, 2)}, None],
}


def _same(got, want):
    if isinstance(want, dict):
        return type(got) is dict and got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, (list, tuple)):
        return type(got) is type(want) and len(got) == len(want) and all(map(_same, got, want))
    same = type(got) is type(want) and got == want
    if isinstance(want, np.generic):
        same = same and got.dtype == want.dtype
    if getattr(want, "tzinfo", None) is not None:
        same = same and got.utcoffset() == want.utcoffset()
    return same


def test_typed_parameters_round_trip_exactly_and_show_readably():
    ex = daskperiment.Experiment("typed")
    params = {name: ex.parameter(name) for name in TYPED}

    @ex.result
    def echo(**values):
        return len(values)

    ex.set_parameters(**TYPED)
    assert echo(**params).compute() == len(TYPED)
    stored = ex.get_parameters(trial_id=1)
    for name, value in TYPED.items():
        assert _same(stored[name], value), (name, stored[name], value)
    row = ex.get_history().loc[1]
    assert row["when"] == TYPED["when"] and row["where"] == TYPED["where"] and row["pair"] == (1, (2, "x"))
    assert row["colour"] is Colour.RED and row["by_int"] == {1: "x", (2, 3): [4]}
    assert "/data/in.csv" in ex.get_history().to_string()  # readable, not a tagged dict


def test_typed_values_are_plain_json_in_the_store():
    import json
    import sqlite3

    ex = daskperiment.Experiment("typed_json")
    p = ex.parameter("p")

    @ex.result
    def echo(p):
        return 1

    ex.set_parameters(p=(1, 2))
    echo(p).compute()
    db = sqlite3.connect(ex.backend.database)
    stored = json.loads(db.execute("SELECT parameters FROM trials").fetchone()[0])
    assert stored == {"p": {"$type": "tuple", "items": [1, 2]}}


def test_enum_of_a_module_not_imported_reads_as_text():
    """Decoding never imports a module named by the store: an unknown enum class reads as text."""
    from daskperiment.serialization import decode_value

    value = decode_value({"$type": "enum", "class": "no_such_module_xyz:Colour", "name": "RED"})
    assert value == "Colour.RED" and "no_such_module_xyz" not in sys.modules


# ---- item 6: call shapes, instances, environment, parameter repr -------------------------------------------


def test_same_instance_for_the_same_id_and_store(tmp_path):
    ex1 = daskperiment.Experiment(id="test_parameter", backend="local")
    a = ex1.parameter("a")
    ex2 = daskperiment.Experiment("test_parameter")
    assert ex1 is ex2 and ex2.get_parameters() == {} and "a" in ex2._parameters.names
    assert daskperiment.Experiment("test_parameter", backend=tmp_path / "other") is not ex1
    assert daskperiment.Experiment("test_parameter", seed=3) is ex1 and ex1.seed == 3
    del ex1, ex2, a
    gc.collect()  # no longer in use: a new instance
    assert daskperiment.Experiment("test_parameter").seed is None


def test_environment_reads_as_text_with_the_original_categories():
    ex, res = division()
    ex.set_parameters(a=1)
    res.compute()
    env = ex.get_environment()
    text = str(env)
    assert "Platform Information:\n  System: " in text and "Python Information:\n  Version: " in text
    assert isinstance(env, dict) and env == ex.get_environment(trial_id=1)
    platform = ex.get_environment(trial_id=1, category="platform")
    assert platform == env["device"] and str(platform).startswith("System: ")
    packages = ex.get_python_packages()
    assert any(line.startswith("pandas==") for line in packages.splitlines()), packages
    assert packages == ex.get_python_packages(trial_id=1) == ex.get_python_packages(1)


def test_parameter_repr_shows_value_and_type():
    ex = daskperiment.Experiment("reprs")
    a = ex.parameter("a")
    assert repr(a) == "Parameter(a: Undefined)"
    ex.set_parameters(a=1)
    assert repr(a) == "Parameter(a: 1<class 'int'>)"


# ---- item 9: re-defining a step stays allowed ----------------------------------------------------------------


def test_redefined_step_replaces_the_old_one():
    ex = daskperiment.Experiment("redefine")

    @ex
    def prepare_data(x):
        return x

    @ex.persist
    def prepare_data(x):  # noqa: F811 - re-defined, as the Quickstart does
        return x + 1

    @ex.result
    def score(v):
        return v

    assert score(prepare_data(1)).compute() == 2
    assert ex.get_persisted("prepare_data", 1) == 2
