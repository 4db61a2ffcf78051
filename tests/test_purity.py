"""Purity checks: deterministic hashing through the ``hash_value`` hook, the warning, the opt-out."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import daskperiment
from daskperiment.backends import STEP_HASH_LIMIT
from daskperiment.plugins import get_plugin_manager

ROOT = pathlib.Path(__file__).resolve().parents[1]
WARNING = "Experiment step result is changed with the same input: (step: calculate_score, args: (7,), kwargs: {})"


def warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def hash_value(value):
    return get_plugin_manager().hook.hash_value(value=value)


def random_quickstart(pure: bool = True):
    """The original documentation's example: ``calculate_score`` adds noise."""
    ex = daskperiment.Experiment("purity")
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result(pure=pure)
    def calculate_score(s):
        return 10 / s + np.random.random()

    ex.set_parameters(a=3, b=4)
    return ex, calculate_score(prepare_data(a, b))


def test_changed_result_with_the_same_input_warns_as_the_original(caplog):
    _, score = random_quickstart()
    score.compute()
    assert WARNING not in warnings(caplog)
    score.compute()  # another generated seed: another result
    assert WARNING in warnings(caplog)
    caplog.clear()
    first = score.compute(seed=1)
    assert WARNING in warnings(caplog)  # differs from the unseeded trial before
    caplog.clear()
    assert score.compute(seed=1) == first
    assert WARNING not in warnings(caplog)


def test_pure_false_opts_out(caplog):
    _, score = random_quickstart(pure=False)
    for _ in range(3):
        score.compute()
    assert not [m for m in warnings(caplog) if "result is changed" in m]


def test_a_value_that_cannot_be_hashed_deterministically_is_not_checked(caplog):
    ex = daskperiment.Experiment("opaque")

    @ex.result
    def opaque():
        return object()  # a fresh identity every time: no deterministic hash exists

    assert hash_value(object()) is None
    for _ in range(2):
        opaque().compute()
    assert not [m for m in warnings(caplog) if "result is changed" in m]


# ---- the default hash -----------------------------------------------------------------------

HASH_SCRIPT = textwrap.dedent("""
    import json
    import dask.array as da
    import numpy as np
    import pandas as pd
    from daskperiment.plugins import get_plugin_manager

    words = {"alpha", "beta", "gamma", "delta", "epsilon"}  # iteration order depends on PYTHONHASHSEED
    values = {
        "array": np.arange(12.0).reshape(3, 4),
        "frame": pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}, index=[10, 20, 30]),
        "series": pd.Series([0.5, 1.5], name="s"),
        "dict_from_set": {word: len(word) for word in words},
        "nested": {"params": [1, 2.5, "x", None, True], "pair": (1, b"raw")},
        "step_input": ("calculate_score", (7,), {"alpha": 0.1}),
        "string_set": words,
        "numpy_scalar": np.float64(2.5),
        "dask_array": da.arange(10, chunks=5),
    }
    hook = get_plugin_manager().hook.hash_value
    print(json.dumps({name: hook(value=value) for name, value in values.items()}))
""")


def hashes_in_a_fresh_process(hash_seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", HASH_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out)


def test_hashes_are_equal_across_processes_and_hash_seeds():
    first, second = hashes_in_a_fresh_process("1"), hashes_in_a_fresh_process("2024")
    assert first == second
    assert all(isinstance(h, str) and h for h in first.values()), first
    assert len(set(first.values())) == len(first)


def test_equal_dicts_hash_alike_whatever_their_order():
    assert hash_value({"a": 1, "b": [1, {"y": 2, "x": 1}]}) == hash_value({"b": [1, {"x": 1, "y": 2}], "a": 1})
    assert hash_value(("f", (), {"x": 1, "y": 2})) == hash_value(("f", (), {"y": 2, "x": 1}))


@pytest.mark.parametrize(("left", "right"), [
    (1, 1.0), (1, True), (1, "1"), ([1, 2], (1, 2)), ({"a": 1}, [("a", 1)]), (b"x", "x"),
    (np.arange(3), np.arange(3.0)), (np.arange(3), np.arange(1, 4)),
    ({"a": [1, 2]}, {"a": [2, 1]}), ([[[[[1]]]]], [[[[[2]]]]]),
])
def test_distinct_values_hash_differently(left, right):
    assert hash_value(left) != hash_value(right)


def test_a_plain_value_hashes_like_itself_in_every_call():
    value = {"deep": [[[{"k": (1, 2.0, None)}]]], 3: "int key", "s": "str key"}
    assert hash_value(value) == hash_value(eval(repr(value)))


def test_the_bound_of_the_purity_record_is_documented():
    doc = (ROOT / "docs" / "reproducibility.md").read_text()
    assert f"{STEP_HASH_LIMIT:,}" in doc and "STEP_HASH_LIMIT" in doc
