"""The Quickstart chapter of the original documentation, executed as a test."""
# ruff: noqa: F811  (steps are redefined on purpose: code-change tracking is under test)

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import daskperiment


def messages(caplog, level=None):
    return [r.getMessage() for r in caplog.records if level is None or r.levelno == level]


def test_quickstart(caplog):
    caplog.set_level(logging.INFO, logger="daskperiment")
    ex = daskperiment.Experiment(id="quickstart_pj")
    assert repr(ex) == ("Experiment(id: quickstart_pj, trial_id: 0, "
                        "backend: LocalBackend('daskperiment_cache/quickstart_pj'))")
    a = ex.parameter("a")
    b = ex.parameter("b")
    assert repr(a) == "Parameter(a: Undefined)"

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    d = prepare_data(a, b)
    s = calculate_score(d)
    assert repr(s).startswith("Delayed('calculate_score-")

    ex.set_parameters(a=1, b=2)
    assert repr(a) == "Parameter(a: 1<class 'int'>)"
    assert s.compute() == 3.3333333333333335
    assert "Started Experiment (trial id=1)" in messages(caplog)
    assert "Finished Experiment (trial id=1)" in messages(caplog)

    ex.set_parameters(b=3)
    assert s.compute() == 2.5
    assert ex.get_parameters(trial_id=1) == {"a": 1, "b": 2}
    assert ex.get_parameters(trial_id=2) == {"a": 1, "b": 3}

    history = ex.get_history()
    assert list(history.columns) == ["a", "b", "Result", "Success", "Finished", "Process Time", "Description"]
    assert history.index.name == "Trial ID" and list(history.index) == [1, 2]
    assert history["a"].dtype == np.int64 and history["Result"].dtype == np.float64
    assert history["Success"].dtype == bool
    assert pd.api.types.is_datetime64_any_dtype(history["Finished"])
    assert pd.api.types.is_timedelta64_dtype(history["Process Time"])
    assert history["Description"].isna().all()

    ex.set_parameters(a=1, b=-1)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        s.compute()
    history = ex.get_history()
    assert list(history["Success"]) == [True, True, False]
    assert history.loc[3, "Description"] == "ZeroDivisionError(division by zero)"
    assert np.isnan(history.loc[3, "Result"])
    verbose = ex.get_history(verbose=True)
    assert list(verbose.columns) == ["a", "b", "Seed", "Result", "Result Type", "Success", "Finished",
                                     "Process Time", "Description", "Sweep"]
    assert verbose["Sweep"].isna().all()  # trials computed one by one belong to no sweep
    assert verbose.loc[1, "Result Type"] == "<class 'float'>"
    assert verbose.loc[3, "Result Type"] == "None"  # a failed trial, as the original showed it
    assert verbose["Seed"].dtype == np.int64

    # Handling intermediate results
    caplog.clear()

    @ex.persist
    def prepare_data(a, b):
        return a + b

    warnings = messages(caplog, logging.WARNING)
    assert warnings[:4] == ["Code context has been changed: prepare_data", "@@ -1,3 +1,3 @@", "-@ex",
                            "+@ex.persist"]
    d = prepare_data(a, b)
    s = calculate_score(d)
    ex.set_parameters(a=1, b=2)
    assert s.compute() == 3.3333333333333335
    ex.set_parameters(a=3, b=2)
    assert s.compute() == 2.0
    assert ex.get_persisted("prepare_data", trial_id=4) == 3
    assert ex.get_persisted("prepare_data", trial_id=5) == 5
    with pytest.raises(daskperiment.PersistedResultNotFoundError):
        ex.get_persisted("prepare_data", trial_id=1)

    # Monitoring metrics
    @ex.result
    def calculate_score(s):
        for i in range(100):
            ex.save_metric("dummy_score", epoch=i, value=100 - np.random.random() * i)
        return 10 / s

    s = calculate_score(prepare_data(a, b))
    ex.set_parameters(a=1, b=2)
    assert s.compute() == 3.3333333333333335
    dummy = ex.load_metric("dummy_score", trial_id=6)
    assert dummy.index.name == "Epoch" and dummy.columns.name == "Trial ID"
    assert list(dummy.columns) == [6] and len(dummy) == 100 and dummy.loc[0, 6] == 100.0
    ex.set_parameters(a=3, b=4)
    assert s.compute() == 1.4285714285714286
    both = ex.load_metric("dummy_score", trial_id=[6, 7])
    assert list(both.columns) == [6, 7] and both.shape == (100, 2)
    with pytest.raises(daskperiment.MetricNotFoundError, match="dummy_score"):
        ex.load_metric("dummy_score", trial_id=1)

    # Code context
    code = ex.get_code()
    assert code.startswith("@ex.persist\ndef prepare_data(a, b):")
    assert 'ex.save_metric("dummy_score"' in code
    assert ex.get_code(trial_id=1) == ("@ex\ndef prepare_data(a, b):\n    return a + b\n\n\n"
                                       "@ex.result\ndef calculate_score(s):\n    return 10 / s\n")

    # Purity and randomness
    @ex.result
    def calculate_score(s):
        for i in range(100):
            ex.save_metric("dummy_score", epoch=i, value=100 - np.random.random() * i)
        return 10 / s + np.random.random()

    s = calculate_score(prepare_data(a, b))
    caplog.clear()
    s.compute()
    assert any(m.startswith("Random seed is not provided, initialized with generated seed: ")
               for m in messages(caplog))
    first = s.compute(seed=1)
    assert "Random seed is initialized with given seed: 1" in messages(caplog)
    assert ("Experiment step result is changed with the same input: (step: calculate_score, "
            "args: (7,), kwargs: {})") in messages(caplog, logging.WARNING)
    caplog.clear()
    assert s.compute(seed=1) == first
    assert not [m for m in messages(caplog, logging.WARNING) if "result is changed" in m]

    # Save experiment status: a new instance loads the history and continues numbering
    ex_new = daskperiment.Experiment(id="quickstart_pj")
    assert ex_new.trial_id == ex.trial_id == 10
    assert len(ex_new.get_history()) == 10
    assert repr(ex_new).startswith("Experiment(id: quickstart_pj, trial_id: 10,")


def test_code_files_are_written_per_trial(quickstart):
    ex, a, b, prepare_data, calculate_score = quickstart
    s = calculate_score(prepare_data(a, b))
    ex.set_parameters(a=1, b=2)
    s.compute()
    s.compute()
    code_dir = ex.backend.path / "code"
    assert sorted(p.name for p in code_dir.glob("*.py")) == ["quickstart_pj_1.py", "quickstart_pj_2.py"]
    assert (code_dir / "quickstart_pj_1.py").read_text() == ex.get_code(trial_id=1)


def test_code_change_between_sessions_is_logged(tmp_path, caplog):
    """A changed step is reported against the previous trial stored by another instance."""
    import gc

    def first_session():
        ex = daskperiment.Experiment("codechange")

        @ex.result
        def step(x=1):
            return x

        step().compute()

    first_session()
    caplog.clear()  # log records hold the first instance
    gc.collect()  # the first session's instance is gone: Experiment() makes a new one
    ex2 = daskperiment.Experiment("codechange")

    @ex2.result
    def step(x=1):
        return x + 1

    caplog.clear()
    step().compute()
    warnings = messages(caplog, logging.WARNING)
    assert warnings[0] == "Code context has been changed: step"
    assert "-    return x" in warnings and "+    return x + 1" in warnings


def test_custom_backend_directory(tmp_path, caplog):
    import pathlib

    caplog.set_level(logging.INFO, logger="daskperiment")
    ex = daskperiment.Experiment("local_custom_backend", backend=pathlib.Path("my_dir"))
    assert repr(ex) == "Experiment(id: local_custom_backend, trial_id: 0, backend: LocalBackend('my_dir'))"

    @ex.result
    def one():
        return 1

    one().compute()
    assert (tmp_path / "my_dir" / "local_custom_backend.sqlite3").exists()
    assert any(m.startswith("Creating new cache directory:") for m in messages(caplog))
