"""The decorator API, parameters, trial ids and their errors."""

from __future__ import annotations

import pytest

import daskperiment
from daskperiment.plugins import set_plugin_manager
from daskperiment import (LockedTrialError, ParameterUndeclaredError, ParameterUndefinedError,
                          TrialIDNotFoundError)


@pytest.mark.parametrize("bad", ["my-exp", "../x", "a/b", "c:d", "1abc", "", "class", 3])
def test_experiment_id_must_be_identifier(bad):
    with pytest.raises(ValueError, match="^Experiment ID must be (str|valid as python identifier)"):
        daskperiment.Experiment(bad)


def test_error_classes_are_value_errors():
    for cls in (TrialIDNotFoundError, ParameterUndefinedError, ParameterUndeclaredError, LockedTrialError,
                daskperiment.UnknownBackendError, daskperiment.BackendUnavailableError):
        assert issubclass(cls, ValueError)


def test_undeclared_parameter(quickstart):
    ex, *_ = quickstart
    with pytest.raises(ParameterUndeclaredError, match=r"^Parameter is not declared.*: c .*ex.parameter"):
        ex.set_parameters(c=1)


def test_undefined_parameter_consumes_no_trial_id(quickstart):
    ex, a, b, prepare_data, calculate_score = quickstart
    s = calculate_score(prepare_data(a, b))
    ex.set_parameters(a=1)
    with pytest.raises(ParameterUndefinedError,
                       match=r"^Parameters are not defined.*initialize: b\. Call ex.set_parameters\(b=...\)"):
        s.compute()
    assert ex.trial_id == 0 and len(ex.get_history()) == 0
    ex.set_parameters(b=1)
    s.compute()
    assert ex.trial_id == 1


def test_parameter_default_and_plain_data():
    ex = daskperiment.Experiment("defaults")
    lr = ex.parameter("lr", default=0.1)
    assert repr(lr) == "Parameter(lr: 0.1<class 'float'>)"

    @ex.result
    def f(lr):
        return lr * 2

    assert f(lr).compute() == 0.2
    assert ex.get_parameters(trial_id=1) == {"lr": 0.1}
    with pytest.raises(TypeError, match="plain data"):
        ex.set_parameters(lr=object())


def test_decorators_with_and_without_parentheses():
    ex = daskperiment.Experiment("decorators")
    x = ex.parameter("x")

    @ex()
    def a(x):
        return x + 1

    @ex(pure=False)
    def b(x):
        return x * 2

    @ex.persist()
    def c(x, y):
        return x + y

    @ex.result()
    def d(v):
        return v

    ex.set_parameters(x=1)
    assert d(c(a(x), b(x))).compute() == 4
    assert ex.get_persisted("c", 1) == 4


def test_plain_dask_mixes_in_and_visualize_graph(quickstart):
    import dask

    ex, a, b, prepare_data, calculate_score = quickstart
    doubled = dask.delayed(lambda v: v * 2)(prepare_data(a, b))
    s = calculate_score(doubled)
    ex.set_parameters(a=1, b=4)
    assert s.compute() == 1.0
    from dask.dot import to_graphviz

    pytest.importorskip("graphviz", reason="graphviz python package renders .visualize()")
    graph = to_graphviz(s.__dask_graph__())
    assert "calculate_score" in graph.source and "prepare_data" in graph.source


def test_intermediate_compute_is_untracked(quickstart):
    ex, a, b, prepare_data, calculate_score = quickstart
    ex.set_parameters(a=1, b=2)
    assert prepare_data(a, b).compute() == 3
    assert ex.trial_id == 0


def test_current_trial_id_and_locked_trial_id(quickstart):
    ex, a, b, prepare_data, _ = quickstart
    seen = {}

    @ex.result
    def report(s):
        seen["current"] = ex.current_trial_id
        with pytest.raises(LockedTrialError, match="current_trial_id"):
            ex.trial_id
        return s

    with pytest.raises(TrialIDNotFoundError, match="only exists during a trial execution"):
        ex.current_trial_id
    ex.set_parameters(a=1, b=2)
    report(prepare_data(a, b)).compute()
    assert seen["current"] == 1 and ex.trial_id == 1


def test_save_metric_outside_trial_is_an_error(quickstart):
    ex, *_ = quickstart
    with pytest.raises(TrialIDNotFoundError, match="save_metric"):
        ex.save_metric("x", epoch=1, value=1.0)


def test_non_numeric_metric_value_fails_the_trial_clearly():
    ex = daskperiment.Experiment("badmetric")

    @ex.result
    def f():
        ex.save_metric("m", epoch=0, value="not a number")
        return 1

    with pytest.raises(TypeError, match="Metric 'm': value must be a real scalar"):
        f().compute()
    assert list(ex.get_history()["Success"]) == [False]


def test_non_plain_result_is_pickled_and_repr_shown():
    import numpy as np

    ex = daskperiment.Experiment("arrays")

    @ex.result
    def f():
        return np.arange(3)

    f().compute()
    assert ex.get_history().loc[1, "Result"] == "array([0, 1, 2])"
    np.testing.assert_array_equal(ex.get_result(1), np.arange(3))
    assert ex.get_history(verbose=True).loc[1, "Result Type"] == "<class 'numpy.ndarray'>"


def test_unpicklable_persisted_result_fails_clearly():
    import threading

    ex = daskperiment.Experiment("unpicklable")

    @ex.persist
    def lock():
        return threading.Lock()

    @ex.result
    def f(v):
        return 1

    with pytest.raises(TypeError, match="cannot be pickled"):
        f(lock()).compute()
    assert list(ex.get_history()["Success"]) == [False]


def test_failed_trial_records_traceback(quickstart):
    ex, a, b, prepare_data, calculate_score = quickstart
    ex.set_parameters(a=1, b=-1)
    with pytest.raises(ZeroDivisionError):
        calculate_score(prepare_data(a, b)).compute()
    record = ex.backend.load_trials([1])[0]
    assert "ZeroDivisionError" in record["traceback"] and "calculate_score" in record["traceback"]


def test_seed_argument_of_experiment_is_default(caplog):
    import random

    ex = daskperiment.Experiment("seeded", seed=5)

    @ex.result
    def draw():
        return random.random()

    first = draw().compute()
    assert draw().compute() == first
    assert ex.get_history(verbose=True)["Seed"].tolist() == [5, 5]


def test_invalid_seed():
    ex = daskperiment.Experiment("badseed")

    @ex.result
    def f():
        return 1

    with pytest.raises(ValueError, match="seed must be a non-negative int up to 2\\*\\*32 - 1"):
        f().compute(seed=-1)
    assert ex.trial_id == 0


def test_unknown_backend_names_installed_schemes_and_extra(monkeypatch):
    with pytest.raises(daskperiment.UnknownBackendError) as info:
        daskperiment.Experiment("x", backend="nosuch://host/0")
    assert "Installed schemes:" in str(info.value) and "file" in str(info.value)
    monkeypatch.setenv("DASKPERIMENT_DISABLE_PLUGINS", "sql")  # as if daskperiment[sql] were not installed
    set_plugin_manager(None)
    try:
        with pytest.raises(daskperiment.UnknownBackendError, match="daskperiment\\[sql\\]") as info:
            daskperiment.Experiment("x", backend="postgresql://user:secret@host/db")
        assert "secret" not in str(info.value)
    finally:
        monkeypatch.delenv("DASKPERIMENT_DISABLE_PLUGINS")
        set_plugin_manager(None)
    with pytest.raises(daskperiment.UnknownBackendError, match="Unknown backend object"):
        daskperiment.Experiment("x", backend=object())


def test_file_uri_backend(tmp_path):
    ex = daskperiment.Experiment("fileuri", backend=f"file://{tmp_path}/store")
    assert ex.backend.path == tmp_path / "store"


def test_experiment_pickles_without_side_effects(quickstart, tmp_path):
    import pickle

    ex, *_ = quickstart
    clone = pickle.loads(pickle.dumps(ex))
    assert clone.id == ex.id and clone.backend.path == ex.backend.path
