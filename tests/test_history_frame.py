"""history_frame's column building: the fast paths give exactly the dtypes pandas would infer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from daskperiment.history import _column, _parameter_columns


@pytest.mark.parametrize("values", [
    [1, 2, 3], [1, 2.5], [1, None], [None, 1], [True, False], [1, True], [True, 2], ["a", "b"], [1, "a"],
    [2**70, 1], [np.nan, 1.0], [[1, 2], [3, 4]], [(1, 2), (3, 4)], [{"x": 1}], [1.5, None],
    [np.int64(3), 4], [np.float32(1.5), 2.0], [],
], ids=repr)
def test_column_dtype_is_what_pandas_infers_for_objects(values):
    index = pd.RangeIndex(len(values))
    expected = pd.Series(values, index=index, dtype=object).infer_objects()
    got = _column(values, index)
    assert got.dtype == expected.dtype
    pd.testing.assert_series_equal(got, expected)


def test_same_names_in_every_trial_in_first_seen_order():
    columns = _parameter_columns([{"b": 1, "a": 0.5}, {"a": 1.5, "b": 2}], pd.RangeIndex(2))
    assert list(columns) == ["b", "a"]
    assert columns["b"].dtype == "int64" and columns["a"].dtype == "float64"


@pytest.mark.parametrize("rows", [
    [{"a": 1, "b": 2}, {"a": 2, "c": 3}],  # same count, other names
    [{"a": 1}, {"a": 2, "c": 3}],  # more names later
    [{"a": 1, "c": 3}, {"a": 2}],  # fewer names later
    [None, {"c": 3}],  # a trial without parameters
])
def test_trials_with_different_names_get_every_name_with_nan_where_missing(rows):
    columns = _parameter_columns(rows, pd.RangeIndex(len(rows)))
    expected = pd.DataFrame([row or {} for row in rows])
    assert list(columns) == list(expected.columns)
    for name, column in columns.items():
        pd.testing.assert_series_equal(column, expected[name], check_names=False)
