"""The dashboard's data functions: the filter language, downsampling, what the pages list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from daskperiment.dashboard.details import diff_lines, packages, parameter_rows, step_timings
from daskperiment.dashboard.query import FilterError, apply_filter, parse
from daskperiment.dashboard.series import downsample


@pytest.fixture
def frame():
    return pd.DataFrame({
        "Trial": [1, 2, 3, 4],
        "Status": ["finished", "failed", "finished", "running"],
        "lr": [0.001, 0.01, 0.1, 1.0],
        "opt": ["adam", "sgd", "adam", None],
        "mixed": [1, "a", 2.5, None],
        "Success": pd.array([True, False, True, None], dtype="boolean"),
        "val/loss.best": [0.5, np.nan, 0.2, 0.9],
        "größe": [1, 2, 3, 4],
    })


def trials(frame, text):
    return apply_filter(frame, text)["Trial"].tolist()


@pytest.mark.parametrize("text, expected", [
    ("lr > 0.005 and Success", [3]),
    ("lr > 0.005 and success", [3]),
    ("not Success", [2, 4]),
    ("Status == 'failed' or opt = \"adam\"", [1, 2, 3]),
    ("(lr < 0.01 or lr >= 1) and not (opt == 'sgd')", [1, 4]),
    ("`val/loss.best` <= 0.5", [1, 3]),
    ("opt != 'adam'", [2, 4]),
    ("opt == none", [4]),
    ("mixed > 1", [3]),
    ("mixed == 'a'", [2]),
    ("größe >= 3", [3, 4]),
    ("lr > 1e-2", [3, 4]),
    ("Trial == 2", [2]),
    ("true", [1, 2, 3, 4]),
    ("", [1, 2, 3, 4]),
])
def test_filter_expressions(frame, text, expected):
    assert trials(frame, text) == expected


@pytest.mark.parametrize("text, message", [
    ("lr >", "expected a name, a number or a quoted text, found the end"),
    ("lr > 1 lr", "expected 'and', 'or' or the end, found 'lr' at position 8"),
    ("(lr > 1", "expected ')'"),
    ("lr ! 1", "unexpected '!' at position 4"),
    ("__import__('os').system('echo')", "unexpected '.' at position 17"),
    ("__import__('os')", "expected 'and', 'or' or the end, found '('"),
    ("nosuch > 1", "no column 'nosuch'"),
    ("lr.__class__ == 1", "no column 'lr.__class__'"),
    ("lr > 1; drop", "unexpected ';'"),
])
def test_filter_errors_say_where(frame, text, message):
    with pytest.raises(FilterError) as info:
        apply_filter(frame, text)
    assert message in str(info.value)


def test_parse_builds_a_tree_never_code():
    tree = parse("a > 1 and not b")
    assert type(tree).__name__ == "Logical" and tree.op == "and"


def test_downsample_keeps_every_extreme_and_order():
    rng = np.random.default_rng(0)
    values = rng.normal(size=1_000_003)
    epochs = np.arange(len(values))
    x, y = downsample(epochs, values, 1000)
    assert len(x) <= 2000 and np.all(np.diff(x) > 0)
    assert y.max() == values.max() and y.min() == values.min()
    # every bucket's extremes are in: the drawn envelope is the true one
    size = -(-len(values) // 1000)
    for start in (0, 500 * size, 999 * size):
        chunk = values[start:start + size]
        assert chunk.max() in y and chunk.min() in y


def test_downsample_small_sorted_and_nan():
    x, y = downsample(np.array([3, 1, 2]), np.array([30.0, 10.0, 20.0]), 10)
    assert x.tolist() == [1, 2, 3] and y.tolist() == [10.0, 20.0, 30.0]
    values = np.r_[np.full(100, np.nan), np.arange(100.0)]
    x, y = downsample(np.arange(200), values, 10)
    assert np.nanmax(y) == 99.0 and np.nanmin(y) == 0.0


def test_diff_lines_classify_a_unified_diff():
    diff = "--- a (before)\n+++ a (after)\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3"
    assert [kind for kind, _ in diff_lines(diff)] == ["file", "file", "hunk", "same", "del", "add"]


def test_packages_table_keeps_the_location():
    assert packages("numpy 2.0.0 (/site)\nmine 0.1 (/src, editable)\nnot-a-requirement\n") == {
        "numpy": ("2.0.0", "/site"), "mine": ("0.1", "/src, editable")}


def test_step_timings_sum_calls():
    record = {"steps": {"prep": [{"seconds": 0.5}, {"seconds": 0.25}], "fit": [{"seconds": 1.0, "error": "E(x)"}]}}
    assert step_timings(record) == [{"step": "prep", "calls": 2, "seconds": 0.75, "error": None},
                                    {"step": "fit", "calls": 1, "seconds": 1.0, "error": "E(x)"}]
    assert step_timings({}) == []


def test_parameter_rows_mark_differences():
    rows = parameter_rows([{"parameters": {"a": 1, "b": [1, 2]}}, {"parameters": {"a": 1, "b": [1, 3], "c": 0}}])
    assert rows == [{"name": "a", "values": ["1", "1"], "differs": False},
                    {"name": "b", "values": ["[1, 2]", "[1, 3]"], "differs": True},
                    {"name": "c", "values": ["(not set)", "0"], "differs": True}]
