"""Several processes running full trials of one experiment: unique ids, nothing lost."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap

import pytest
from daskperiment import Experiment

WORKER = textwrap.dedent("""
    import sys
    from daskperiment import Experiment

    uri, worker, trials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ex = Experiment("shared", backend=uri)
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex.persist
    def prepare(a, b):
        return a + b

    @ex.result
    def score(s):
        for i in range(50):
            ex.save_metric("m", epoch=i, value=float(s))
        return s

    for i in range(trials):
        ex.set_parameters(a=worker, b=i)
        score(prepare(a, b)).compute()
""")


def test_processes_running_trials_of_one_experiment(mongo_uri):
    workers, trials = 3, 5
    processes = [subprocess.Popen([sys.executable, "-c", WORKER, mongo_uri, str(w), str(trials)],
                                  stderr=subprocess.PIPE, text=True) for w in range(workers)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    ex = Experiment("shared", backend=mongo_uri)
    history = ex.get_history()
    assert list(history.index) == list(range(1, workers * trials + 1))
    assert history["Success"].all()
    pairs = sorted((int(r["a"]), int(r["b"])) for _, r in history.iterrows())
    assert pairs == [(w, i) for w in range(workers) for i in range(trials)]
    for trial_id, row in history.iterrows():
        assert ex.get_persisted("prepare", trial_id) == row["a"] + row["b"]
        assert list(ex.load_metric("m", trial_id)[trial_id]) == [row["a"] + row["b"]] * 50
    ex.backend.close()


def test_steps_in_dask_worker_processes(mongo_uri):
    """Dask pickles the backend into worker processes, which reconnect and write metrics."""
    ex = Experiment("workers", backend=mongo_uri)
    n = ex.parameter("n")

    @ex.persist
    def make(n):
        for i in range(n):
            ex.save_metric("made", epoch=i, value=i)
        return list(range(n))

    @ex.result
    def total(values):
        return sum(values)

    ex.set_parameters(n=100)
    assert total(make(n)).compute(scheduler="processes") == 4950
    assert ex.get_persisted("make", 1) == list(range(100))
    assert list(ex.load_metric("made", 1)[1]) == [float(i) for i in range(100)]
    ex.backend.close()


def _start_trials(backend, n: int) -> None:
    for _ in range(n):
        backend.finish_trial(backend.start_trial({"parameters": {}}), {"success": True})


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_children_reconnect(make_mongo_backend):
    """A backend inherited through fork (not pickled) must not reuse the parent's client."""
    backend = make_mongo_backend("forked")
    _start_trials(backend, 1)  # the parent's client is connected now
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_start_trials, args=(backend, 5)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    _start_trials(backend, 1)  # and the parent's client still works
    assert [r["trial_id"] for r in backend.load_trials() if r["success"]] == list(range(1, 18))
