"""Nothing lost: concurrent trials in threads, processes and on dask.distributed workers."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import daskperiment

WORKER = textwrap.dedent("""
    import sys
    import daskperiment

    ex = daskperiment.Experiment('shared', backend=__import__('pathlib').Path(sys.argv[1]))
    a = ex.parameter('a')

    @ex.persist
    def double(a):
        return a * 2

    @ex.result
    def score(v):
        for i in range(50):
            ex.save_metric('m', epoch=i, value=v)
        return v

    s = score(double(a))
    for i in range(int(sys.argv[2])):
        ex.set_parameters(a=int(sys.argv[3]) * 1000 + i)
        s.compute()
""")


def test_processes_running_trials_of_one_experiment(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, str(script), str(store), "15", str(p)], cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for p in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    ex = daskperiment.Experiment("shared", backend=store)
    history = ex.get_history()
    assert list(history.index) == list(range(1, 61))
    assert history["Success"].all()
    assert sorted(history["a"]) == sorted(p * 1000 + i for p in range(4) for i in range(15))
    for trial_id, row in history.iterrows():
        assert ex.get_persisted("double", trial_id) == row["a"] * 2 == row["Result"]
        assert ex.load_metric("m", trial_id)[trial_id].tolist() == [row["Result"]] * 50


def test_threads_running_trials_of_one_experiment():
    ex = daskperiment.Experiment("threads")
    a = ex.parameter("a", default=1)

    @ex.result
    def score(a):
        ex.save_metric("id", epoch=0, value=ex.current_trial_id)
        return ex.current_trial_id

    s = score(a)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: s.compute(scheduler="threads"), range(20)))
    assert sorted(results) == list(range(1, 21))
    history = ex.get_history()
    assert history["Result"].tolist() == list(range(1, 21))
    for trial_id in range(1, 21):
        assert ex.load_metric("id", trial_id)[trial_id].tolist() == [trial_id]


KILLED = textwrap.dedent("""
    import sys, time
    import daskperiment

    ex = daskperiment.Experiment('killed', backend=__import__('pathlib').Path(sys.argv[1]))
    a = ex.parameter('a')

    @ex.result
    def slow(a):
        ex.save_metric('m', epoch=0, value=a)
        if a == 99:
            print('RUNNING', flush=True)
            time.sleep(600)
        return a

    s = slow(a)
    for value in (1, 2, 99):
        ex.set_parameters(a=value)
        s.compute()
""")


def test_sigkill_mid_trial_keeps_earlier_trials(tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, str(script), str(store)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "RUNNING"
    time.sleep(1.5)  # let the background flusher write the running trial's metric
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    ex = daskperiment.Experiment("killed", backend=store)
    history = ex.get_history()
    assert list(history.index) == [1, 2, 3]
    assert history.loc[1:2, "Result"].tolist() == [1, 2]
    assert history["Success"].tolist() == [True, True, False]  # its process is gone: abandoned
    assert history.loc[3, "Description"].startswith(f"Abandoned: its process {proc.pid} on this host")
    assert history.loc[3, "a"] == 99
    assert ex.load_metric("m", 3)[3].tolist() == [99.0]
    # the next trial works and continues the numbering
    ex.parameter("a")

    @ex.result
    def again(a):
        return a

    ex.set_parameters(a=5)
    assert again(ex.parameter("a")).compute() == 5 and ex.trial_id == 4


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield client


def test_trials_on_local_cluster_with_process_workers(cluster_client, tmp_path):
    ex = daskperiment.Experiment("distributed", backend=tmp_path / "store")
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        ex.save_metric("prep", epoch=0, value=a)
        return {"pid": os.getpid(), "value": a + 1, "trial": ex.current_trial_id}

    @ex.persist
    def tags(a):
        return {a, os.getpid()}  # a set: a pickle, signed on the worker with the inherited key

    @ex.result
    def score(p, t):
        for i in range(10):
            ex.save_metric("m", epoch=i, value=i * p["value"])
        return [p["pid"], p["trial"], ex.current_trial_id]

    s = score(prepare(a), tags(a))
    for value in (1, 2):
        ex.set_parameters(a=value)
        worker_pid, prep_trial, score_trial = s.compute()
        assert worker_pid != os.getpid()
        assert prep_trial == score_trial == ex.trial_id
    assert ex.get_persisted("prepare", 2)["value"] == 3
    assert 2 in ex.get_persisted("tags", 2)  # verified in the driver: the workers have the same key
    assert ex.load_metric("m", [1, 2])[2].tolist() == [i * 3.0 for i in range(10)]
    assert ex.load_metric("prep", 1)[1].tolist() == [1.0]
    assert ex.get_history()["Success"].tolist() == [True, True]
