"""Sweeps: many trials as one Dask graph, each recorded, locally and on a process cluster."""

from __future__ import annotations

import logging
import pathlib
import random
import subprocess
import sys
import textwrap
import time

import dask
import numpy as np
import pytest

import daskperiment
from daskperiment.errors import ParameterUndeclaredError, ParameterUndefinedError, UntrackedComputeError
from daskperiment.seeding import rng
from daskperiment.sweep import expand_trials, trial_seeds


def counting_experiment(calls: pathlib.Path, experiment_id: str = "sweep_pj"):
    """load() uses no parameter, prepare(a) uses a, score(prepared, b) is the result.

    Each step appends its name to ``calls`` (a file: counts calls across worker processes).
    """
    ex = daskperiment.Experiment(id=experiment_id)
    a = ex.parameter("a")
    b = ex.parameter("b", default=1)

    def count(name: str) -> None:
        with open(calls, "a") as f:
            f.write(name + "\n")

    @ex
    def load():
        count("load")
        return 10

    @ex
    def prepare(data, a):
        count("prepare")
        return data * a

    @ex.result
    def score(prepared, b):
        count("score")
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=prepared / (epoch + 1))
        return prepared / b + float(rng().random())

    return ex, score(prepare(load(), a), b)


def calls_of(calls: pathlib.Path) -> dict[str, int]:
    names = calls.read_text().split() if calls.exists() else []
    return {name: names.count(name) for name in ("load", "prepare", "score")}


@pytest.fixture
def counted(tmp_path):
    calls = tmp_path / "calls.txt"
    ex, result = counting_experiment(calls)
    return ex, result, calls


# ---- which trials ------------------------------------------------------------------------------------
def test_grid_is_a_cartesian_product_run_as_recorded_trials(counted):
    ex, result, _ = counted
    frame = ex.sweep(result, a=[1, 2, 3], b=[1, 2]).compute(seed=7)
    assert list(frame.index) == [1, 2, 3, 4, 5, 6] and frame.index.name == "Trial ID"
    assert list(zip(frame["a"], frame["b"])) == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    assert frame["Success"].all()
    assert list(frame.columns) == list(ex.get_history().columns)
    history = ex.get_history(verbose=True)
    assert history["Sweep"].nunique() == 1 and len(history["Sweep"].iloc[0]) == 32
    assert history["Seed"].tolist() == trial_seeds(7, 6)
    assert (history["Result"] - history["a"] * 10 / history["b"]).between(0, 1).all()
    metrics = ex.load_metric("loss", trial_id=list(frame.index))
    assert metrics.loc[2].tolist() == [a * 10 / 3 for a in (1, 1, 2, 2, 3, 3)]  # each trial has its own points


def test_list_of_dicts_and_unnamed_parameters_keep_their_values(counted):
    ex, result, _ = counted
    ex.set_parameters(a=5)
    frame = ex.sweep(result, [{"b": 1}, {"a": 2, "b": 4}]).compute(seed=1)
    assert frame[["a", "b"]].values.tolist() == [[5, 1], [2, 4]]
    assert ex.get_parameters() == {"a": 5, "b": 1}  # the experiment's own values are untouched


def test_with_parameters_values_are_the_base_of_each_trial(counted):
    ex, result, _ = counted
    frame = ex.sweep(result.with_parameters(a=3), b=[1, 2]).compute()
    assert frame["a"].tolist() == [3, 3]


def test_any_iterable_of_dicts_plugs_in_like_a_random_sampler(counted):
    ex, result, _ = counted
    sampler = random.Random(0)
    trials = ({"a": sampler.randint(1, 100), "b": sampler.choice([1, 2, 4])} for _ in range(5))  # a generator
    frame = ex.sweep(result, trials).compute(seed=3)
    sampler = random.Random(0)
    assert frame[["a", "b"]].values.tolist() == [[sampler.randint(1, 100), sampler.choice([1, 2, 4])]
                                                  for _ in range(5)]


def test_scikit_learn_grids_and_samplers_plug_in(counted):
    model_selection = pytest.importorskip("sklearn.model_selection", reason="scikit-learn is in requirements/dev.txt")
    ex, result, _ = counted
    grid = model_selection.ParameterGrid({"a": [1, 2], "b": [1, 4]})
    frame = ex.sweep(result, grid).compute(seed=1)
    assert sorted(map(tuple, frame[["a", "b"]].values.tolist())) == [(1, 1), (1, 4), (2, 1), (2, 4)]
    sampler = model_selection.ParameterSampler({"a": range(1, 50), "b": [1, 2, 4]}, n_iter=5, random_state=0)
    frame = ex.sweep(result, sampler).compute(seed=1)
    assert frame[["a", "b"]].values.tolist() == [[p["a"], p["b"]] for p in sampler]


def test_trials_and_grid_combine():
    assert expand_trials([{"a": 1}, {"a": 2}], {"b": [3, 4]}) == [
        {"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]


@pytest.mark.parametrize("trials, grid, error, match", [
    ([{"a": 1}, {"a": 2, "c": 3}], {}, ParameterUndeclaredError, "Parameter is not declared.*: c "),
    ([{"b": 2}], {}, ParameterUndefinedError, "ex.set_parameters\\(a=...\\)"),
    (None, {"a": 1}, TypeError, "write a=\\[1\\] for a single value"),
    (None, {"a": []}, ValueError, "no values"),
    ({"a": 1}, {}, TypeError, "pass \\[dict"),
    ([{"a": 1}, 5], {}, TypeError, "trial #1 is a int"),
    ([{"a": 1}], {"a": [2]}, ValueError, "both in a trial dict and as a grid"),
    ([], {}, ValueError, "no trials"),
    ([{"a": object()}], {}, TypeError, "a"),
])
def test_every_trial_is_validated_before_any_id(counted, trials, grid, error, match):
    ex, result, calls = counted
    with pytest.raises(error, match=match):
        ex.sweep(result, trials, **grid)
    assert ex.trial_id == 0 and not calls.exists()


# ---- seeds ------------------------------------------------------------------------------------------
def test_trial_seeds_are_reproducible_and_distinct():
    assert trial_seeds(7, 5) == trial_seeds(7, 5) != trial_seeds(8, 5)
    assert len(set(trial_seeds(7, 1000))) == 1000
    assert all(0 <= s < 2**32 for s in trial_seeds(7, 1000))


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_a_trial_rerun_alone_gives_its_sweep_result(counted, scheduler):
    ex, result, _ = counted
    frame = ex.sweep(result, a=[1, 2], b=[1, 3]).compute(seed=11, scheduler=scheduler)
    again = ex.sweep(result, a=[1, 2], b=[1, 3]).compute(seed=11, scheduler="sync")
    assert frame["Result"].tolist() == again["Result"].tolist()
    seeds = ex.get_history(verbose=True)["Seed"]
    for trial_id, row in frame.iterrows():
        alone = result.with_parameters(a=int(row["a"]), b=int(row["b"])).compute(seed=int(seeds[trial_id]))
        assert alone == row["Result"]


def test_every_sweep_trial_reproduces_identically(counted):
    ex, result, _ = counted
    frame = ex.sweep(result, a=[1, 2], b=[1, 2]).compute(seed=3, scheduler="sync")
    for trial_id in frame.index:
        reproduction = ex.reproduce(int(trial_id), scheduler="sync")
        assert reproduction.identical and reproduction.result == frame.loc[trial_id, "Result"], str(reproduction)


# ---- shared steps -----------------------------------------------------------------------------------
def test_steps_whose_inputs_agree_run_once_and_records_say_so(counted):
    ex, result, calls = counted
    frame = ex.sweep(result, a=[1, 2], b=[1, 2, 4]).compute(seed=2)
    assert calls_of(calls) == {"load": 1, "prepare": 2, "score": 6}
    records = ex.backend.load_trials(list(frame.index))
    assert [r["shared_steps"] for r in records] == ["load,prepare"] * 6
    assert frame["Result"].round(6).tolist() == pytest.approx(
        ex.sweep(result, a=[1, 2], b=[1, 2, 4]).compute(seed=2, scheduler="sync")["Result"].round(6).tolist())


def test_impure_and_persisted_steps_are_never_shared(tmp_path):
    calls = tmp_path / "calls.txt"
    ex = daskperiment.Experiment(id="unshared")
    b = ex.parameter("b")

    @ex(pure=False)
    def draw():
        calls.open("a").write("draw\n")
        return float(np.random.random())

    @ex.persist
    def keep(x):
        calls.open("a").write("keep\n")
        return x

    @ex.result
    def score(x, b):
        return x * b

    frame = ex.sweep(score(keep(draw()), b), b=[1, 2, 3]).compute(seed=5)
    assert sorted(calls.read_text().split()) == ["draw"] * 3 + ["keep"] * 3
    assert [ex.get_persisted("keep", t) * b for t, b in zip(frame.index, frame["b"])] == frame["Result"].tolist()
    assert all(r["shared_steps"] is None for r in ex.backend.load_trials(list(frame.index)))


# ---- failures ---------------------------------------------------------------------------------------
def failing_experiment(delay: float = 0.0):
    ex = daskperiment.Experiment(id="failing")
    d = ex.parameter("d")

    @ex
    def invert(d):
        time.sleep(delay)
        return 1 / d

    @ex.result
    def score(x):
        return x * 2

    return ex, score(invert(d))


def test_a_failing_trial_is_recorded_and_the_others_go_on(caplog):
    ex, result = failing_experiment()
    caplog.set_level(logging.INFO, logger="daskperiment")
    frame = ex.sweep(result, d=[1, 2, 0, 4, 5, 8]).compute(seed=1)
    assert frame["Success"].tolist() == [True, True, False, True, True, True]
    assert frame.loc[3, "Description"] == "ZeroDivisionError(division by zero)"
    assert frame["Result"].dropna().tolist() == [2.0, 1.0, 0.5, 0.4, 0.25]
    assert "ZeroDivisionError: division by zero" in ex.backend.load_trials([3])[0]["traceback"]
    assert "6 trials: 5 succeeded, 1 failed (trial 3: ZeroDivisionError(division by zero))" in caplog.messages


def test_fail_fast_stops_and_records_the_rest_as_cancelled(caplog):
    ex, result = failing_experiment()
    caplog.set_level(logging.INFO, logger="daskperiment")
    frame = ex.sweep(result, d=[0] * 40).compute(seed=1, fail_fast=True)  # every trial would fail
    assert len(frame) == 40 and len(ex.get_history()) == 40  # never a silent partial result
    assert not frame["Success"].any()
    failed = frame["Description"] == "ZeroDivisionError(division by zero)"
    cancelled = frame["Description"].str.startswith("Cancelled: fail_fast stopped the sweep")
    assert 1 <= failed.sum() <= 3 and (failed | cancelled).all()  # the first failure stops it (a few in flight)
    first = frame.index[failed][0]
    assert f"40 trials: 0 succeeded, {failed.sum()} failed, {cancelled.sum()} cancelled (trial {first}: " \
           "ZeroDivisionError(division by zero))" in caplog.messages


def test_without_fail_fast_every_trial_runs(caplog):
    ex, result = failing_experiment()
    frame = ex.sweep(result, d=[0] * 10).compute(scheduler="sync")
    assert (frame["Description"] == "ZeroDivisionError(division by zero)").all()


# ---- the dask.compute-style paths never compute without a record ----------------------------------
def test_dask_compute_persist_and_derived_results_raise(quickstart):
    ex, a, b, prepare_data, calculate_score = quickstart
    ex.set_parameters(a=1, b=2)
    s = calculate_score(prepare_data(a, b))
    for run in (lambda: dask.compute(s), s.persist, lambda: dask.persist(s)):
        with pytest.raises(UntrackedComputeError, match=r"s\.compute\(.*ex\.sweep"):
            run()
    with pytest.raises(UntrackedComputeError, match="ran outside a trial"):
        dask.delayed(lambda v: v + 1)(s).compute()
    assert prepare_data(a, b).compute() == 3  # intermediate steps still compute plainly
    assert ex.trial_id == 0
    assert s.compute() == 10 / 3 and ex.trial_id == 1


# ---- on a LocalCluster with process workers ------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


def test_sweep_on_a_process_cluster(counted, client):
    ex, result, calls = counted
    frame = ex.sweep(result, a=[1, 2], b=[1, 2, 4]).compute(seed=9, scheduler=client)
    assert frame["Success"].all() and len(frame) == 6
    assert calls_of(calls) == {"load": 1, "prepare": 2, "score": 6}
    seeds = ex.get_history(verbose=True)["Seed"]
    for trial_id, row in frame.iterrows():  # re-run alone, locally, with the recorded seed
        alone = result.with_parameters(a=int(row["a"]), b=int(row["b"])).compute(seed=int(seeds[trial_id]),
                                                                                scheduler="sync")
        assert alone == row["Result"]
    assert ex.load_metric("loss", trial_id=list(frame.index)).shape == (3, 6)  # sent back by the workers


def test_failures_and_fail_fast_on_a_process_cluster(client):
    ex, result = failing_experiment(delay=0.1)  # 30 trials take 1.5 s on 2 workers: the first failure stops them
    frame = ex.sweep(result, d=[1, 0, 2]).compute(scheduler=client)
    assert frame["Success"].tolist() == [True, False, True]
    frame = ex.sweep(result, d=[0] * 30).compute(scheduler=client, fail_fast=True)
    assert len(frame) == 30 and not frame["Success"].any()
    assert frame["Description"].str.startswith("Cancelled: ").sum() > 0


def test_client_compute_of_a_trial_result_raises(quickstart, client):
    ex, a, b, prepare_data, calculate_score = quickstart
    with pytest.raises(UntrackedComputeError):
        client.compute(calculate_score(prepare_data(a, b)))
    assert ex.trial_id == 0


# ---- two processes sweeping one experiment ------------------------------------------------------------
SWEEPER = textwrap.dedent("""
    import sys, pathlib
    import daskperiment

    ex = daskperiment.Experiment('shared_sweep', backend=pathlib.Path(sys.argv[1]))
    a = ex.parameter('a')

    @ex.result
    def score(a):
        for i in range(20):
            ex.save_metric('m', epoch=i, value=a)
        return a

    s = score(a)
    for k in range(3):
        ex.sweep(s, a=[int(sys.argv[2]) * 1000 + k * 100 + i for i in range(10)]).compute()
""")


def test_two_processes_sweeping_one_experiment(tmp_path):
    script = tmp_path / "sweeper.py"
    script.write_text(SWEEPER)
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, str(script), str(store), str(p)], cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for p in (1, 2)]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    ex = daskperiment.Experiment("shared_sweep", backend=store)
    history = ex.get_history(verbose=True)
    assert list(history.index) == list(range(1, 61)) and history["Success"].all()
    assert sorted(history["a"]) == sorted(p * 1000 + k * 100 + i for p in (1, 2) for k in range(3) for i in range(10))
    assert (history["Result"] == history["a"]).all() and history["Sweep"].nunique() == 6
    assert history.groupby("Sweep").size().tolist() == [10] * 6
    metrics = ex.load_metric("m", trial_id=list(history.index))
    assert (metrics.iloc[0].values == history["a"].values).all()


# ---- progress --------------------------------------------------------------------------------------------
def test_progress_bar_on_request_and_off_when_not_a_terminal(counted, capfd):
    ex, result, _ = counted
    ex.sweep(result, a=[1, 2]).compute(progress=True, scheduler="threads")
    assert "% Completed" in capfd.readouterr().err
    ex.sweep(result, a=[1, 2]).compute(scheduler="threads")  # stderr is not a terminal under pytest
    assert "% Completed" not in capfd.readouterr().err


# ---- interrupted sweeps and dying workers: every trial still ends with an outcome -----------------------
def test_an_interrupted_sweep_records_every_trial_before_propagating():
    ex = daskperiment.Experiment(id="interrupted")
    d = ex.parameter("d")

    @ex.result
    def score(d):
        if d == 3:
            raise KeyboardInterrupt  # not an Exception: it stops the whole sweep, like Ctrl-C
        return d

    with pytest.raises(KeyboardInterrupt):
        ex.sweep(score(d), d=list(range(6))).compute(scheduler="sync")
    history = ex.get_history()
    assert len(history) == 6 and history["Success"].dtype == bool  # no trial left unfinished
    interrupted = history["Description"].str.startswith("Cancelled: the sweep was interrupted by KeyboardInterrupt")
    assert (history["Success"] | interrupted).all() and interrupted.sum() >= 1


def test_a_trial_whose_worker_dies_fails_alone(tmp_path):
    distributed = pytest.importorskip("distributed")
    ex = daskperiment.Experiment(id="dying")
    d = ex.parameter("d")

    @ex.result
    def score(d):
        if d == 2:
            import os
            os._exit(1)  # the worker process dies mid-sweep
        return d

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                     worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        frame = ex.sweep(score(d), d=[0, 1, 2, 3, 4]).compute(scheduler=client)
    assert len(frame) == 5 and len(ex.get_history()) == 5  # every trial recorded
    assert not frame.loc[3, "Success"] and frame.loc[3, "Description"].startswith("KilledWorker(")
    # a trial queued on the dying worker may be lost with it (the scheduler says so); the others succeed
    others = frame.drop(index=3)
    assert (others["Success"] | others["Description"].str.startswith("KilledWorker(").fillna(False)).all()
    assert others.loc[others["Success"], "Result"].tolist() == others.loc[others["Success"], "d"].tolist()
