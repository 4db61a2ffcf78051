"""A trial is a value: its parameters belong to it, not to the shared Experiment."""

from __future__ import annotations

import sys
import threading

import pytest

import daskperiment


def test_eight_threads_sharing_one_experiment_never_mix_values(tmp_path):
    ex = daskperiment.Experiment("threads", backend=tmp_path / "threads")
    a = ex.parameter("a")
    b = ex.parameter("b", default=0)

    @ex
    def pair(a, b):
        return (a, b)

    @ex.result
    def echo(p):
        return list(p)

    result = echo(pair(a, b))
    errors: list[BaseException] = []

    def worker(thread: int) -> None:
        try:
            for i in range(100):
                value = result.with_parameters(a=thread, b=i).compute(seed=thread, scheduler="sync")
                assert value == [thread, i]
        except BaseException as exc:  # reported below, with the thread's values
            errors.append(exc)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert not errors, errors[:3]
    history = ex.get_history(verbose=True)
    assert len(history) == 800 and history.index.is_unique
    assert history["Success"].all()
    for trial_id, row in history.iterrows():
        assert row["Result"] == [row["a"], row["b"]], trial_id
        assert row["Seed"] == row["a"]
    assert sorted(history.groupby("a").size().to_dict().items()) == [(t, 100) for t in range(8)]


def test_with_parameters_leaves_shared_values_alone(tmp_path):
    ex = daskperiment.Experiment("overrides", backend=tmp_path / "overrides")
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex.result
    def add(a, b):
        return a + b

    s = add(a, b)
    ex.set_parameters(a=1, b=2)
    assert s.with_parameters(b=10).compute() == 11
    assert ex.get_parameters() == {"a": 1, "b": 2}
    assert ex.get_parameters(trial_id=1) == {"a": 1, "b": 10}
    assert s.compute() == 3  # the shared values are untouched
    assert s.with_parameters(a=5).with_parameters(b=5).parameters == {"a": 5, "b": 5}


def test_with_parameters_rejects_undeclared_names_before_any_trial(tmp_path):
    ex = daskperiment.Experiment("overrides_bad", backend=tmp_path / "bad")
    a = ex.parameter("a")

    @ex.result
    def same(a):
        return a

    with pytest.raises(daskperiment.ParameterUndeclaredError, match="zzz"):
        same(a).with_parameters(zzz=1).compute()
    with pytest.raises(TypeError, match="plain data"):
        same(a).with_parameters(a=object()).compute()
    assert ex.trial_id == 0


def test_plan_is_fixed_before_the_id_is_allocated(tmp_path):
    """Changing the shared values after planning cannot change a planned trial."""
    from daskperiment import trial

    ex = daskperiment.Experiment("planned", backend=tmp_path / "planned")
    a = ex.parameter("a")

    @ex.result
    def same(a):
        return a

    s = same(a)
    ex.set_parameters(a=1)
    plan = ex.plan(s, {}, seed=3)
    ex.set_parameters(a=2)
    assert trial.run(plan, dask_kwargs={}) == 1
    assert ex.get_parameters(trial_id=1) == {"a": 1}
