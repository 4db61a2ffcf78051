"""Several processes (teammates' machines, Dask worker processes) run trials of one experiment at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import daskperiment
import pytest
import redis

SCRIPT = textwrap.dedent("""
    import json, logging, sys
    import daskperiment

    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    uri, experiment_id, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ex = daskperiment.Experiment(experiment_id, backend=uri)
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        return [a] * 3

    @ex.result
    def train(data):
        for epoch in range(50):
            ex.save_metric("loss", epoch=epoch, value=data[0] + epoch)
        return {"worker": data[0] // 1000, "trial": ex.current_trial_id}

    done = []
    for i in range(n):
        ex.set_parameters(a=worker * 1000 + i)
        done.append(train(prepare(a)).compute(seed=i)["trial"])
    print(json.dumps(done))
""")


def test_processes_running_trials_concurrently(redis_uri, tmp_path):
    experiment_id, workers, per_worker = "team", 4, 5
    script = tmp_path / "run_trials.py"
    script.write_text(SCRIPT)
    procs = [subprocess.Popen([sys.executable, str(script), redis_uri, experiment_id, str(w), str(per_worker)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    ids_by_worker = {}
    for worker, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        ids_by_worker[worker] = json.loads(out.strip().splitlines()[-1])

    total = workers * per_worker
    all_ids = sorted(i for ids in ids_by_worker.values() for i in ids)
    assert all_ids == list(range(1, total + 1))  # unique and gap-free

    ex = daskperiment.Experiment(experiment_id, backend=redis_uri)
    history = ex.get_history()
    assert list(history.index) == list(range(1, total + 1)) and history["Success"].all()
    metrics = ex.load_metric("loss", all_ids)
    for worker, ids in ids_by_worker.items():
        for i, trial_id in enumerate(ids):
            a = worker * 1000 + i
            assert ex.get_parameters(trial_id) == {"a": a}
            assert ex.get_result(trial_id) == {"worker": worker, "trial": trial_id}
            assert ex.get_persisted("prepare", trial_id) == [a] * 3
            assert metrics[trial_id].tolist() == [a + e for e in range(50)]


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.parametrize("form", ["uri", "pool"])
def test_trials_on_dask_worker_processes(cluster_client, redis_uri, form):
    """Workers get a pickled backend (a pool is rebuilt from its arguments) and write to the same server."""
    ex = daskperiment.Experiment("distributed", backend=redis_uri if form == "uri"
                                 else redis.ConnectionPool.from_url(redis_uri))
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        ex.save_metric("prep", epoch=0, value=a)
        return {"pid": os.getpid(), "value": a + 1}

    @ex.result
    def score(p):
        for i in range(10):
            ex.save_metric("m", epoch=i, value=i * p["value"])
        return [p["pid"], ex.current_trial_id]

    s = score(prepare(a))
    for value in (1, 2):
        ex.set_parameters(a=value)
        worker_pid, trial_id = s.compute(seed=1)
        assert worker_pid != os.getpid() and trial_id == ex.trial_id
    assert ex.get_persisted("prepare", 2)["value"] == 3
    assert ex.load_metric("m", [1, 2])[2].tolist() == [i * 3.0 for i in range(10)]
    assert ex.load_metric("prep", [1, 2]).iloc[0].tolist() == [1.0, 2.0]
    assert ex.get_history()["Success"].tolist() == [True, True]
