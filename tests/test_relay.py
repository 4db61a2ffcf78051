"""The driver is the only writer: steps in other processes send what they record back with their values.

The cluster tests run the workers as another user (``nobody``) who can neither read nor write
the driver's local backend directory, so anything a worker tried to write itself would fail.
"""

from __future__ import annotations

import importlib
import logging
import os
import pwd
import signal
import tempfile
import threading
import time

import numpy as np
import pytest

import daskperiment
from daskperiment.dask_compat import scheduler_of
from daskperiment.relay import Outbox, Receiver, Relayed, crosses_processes, relayed

distributed = pytest.importorskip("distributed")


# ---- the relay itself ------------------------------------------------------------------------------------
class Sink:
    """A trial's context as the receiver sees it: what reached it, in order."""

    def __init__(self) -> None:
        self.hashes: list[tuple[str, str, str, str]] = []
        self.steps: list[tuple[str, dict]] = []
        self.metrics: list[tuple[str, np.ndarray, np.ndarray]] = []

    def record_step_hash(self, step, input_hash, output_hash, call):
        self.hashes.append((step, input_hash, output_hash, call()))

    def record_step(self, step, record):
        self.steps.append((step, record))

    def write_metrics(self, key, epochs, values):
        self.metrics.append((key, epochs, values))


def boxed(trial_id: int, step: str, epochs: list[int]) -> Outbox:
    box = Outbox()
    box.steps.append((trial_id, step, {"seconds": 0.1}))
    box.save_metrics(trial_id, "loss", np.array(epochs, dtype="<i8"), np.array(epochs, dtype="<f8") / 10)
    return box


def test_inputs_are_unwrapped_in_containers_and_records_carried_once():
    first, second = boxed(1, "load", [0, 1]), boxed(1, "prepare", [2])
    shared = Relayed(10, (first,))

    def add(values, extra):
        return sum(values) + extra["x"]

    out = relayed(add, [shared, Relayed(5, (first, second))], {"x": shared})  # a diamond: `first` twice
    assert isinstance(out, Relayed) and out.value == 25
    assert [box.id for box in out.records] == [first.id, second.id]
    assert relayed(add, [1, 2], {"x": 3}) == 6  # nothing recorded: the plain value


def test_a_failing_task_carries_its_records_on_the_exception():
    box = boxed(1, "load", [0])
    with pytest.raises(ZeroDivisionError) as caught:
        relayed(lambda v: v / 0, Relayed(1, (box,)))
    sink = Sink()
    receiver = Receiver(None, {1: sink})  # type: ignore[arg-type]  # no persisted or cached entries here
    receiver.take_error(caught.value)
    assert [step for step, _ in sink.steps] == ["load"]


def test_the_receiver_writes_each_outbox_once_joining_metric_batches():
    sink = Sink()
    receiver = Receiver(None, {7: sink})  # type: ignore[arg-type]
    first, second = boxed(7, "a", [0, 1]), boxed(7, "b", [2, 3])
    assert receiver.take(Relayed("value", (first, second))) == "value"
    assert receiver.take(Relayed("again", (first,))) == "again"  # the same records along another path
    assert [step for step, _ in sink.steps] == ["a", "b"]
    (key, epochs, values), = sink.metrics  # one write for the trial's metric
    assert key == "loss" and epochs.tolist() == [0, 1, 2, 3] and values.tolist() == [0, 0.1, 0.2, 0.3]


@pytest.mark.parametrize("kwargs, relaying", [
    ({}, False), ({"scheduler": "threads"}, False), ({"scheduler": "sync"}, False),
    ({"scheduler": "processes"}, True),
])
def test_only_schedulers_that_may_leave_the_process_are_relayed(kwargs, relaying):
    assert crosses_processes(scheduler_of(kwargs)) is relaying


# ---- on a cluster whose workers cannot touch the driver's disk --------------------------------------------
#: What a worker imports before it drops root: this interpreter lives under /root (0700 here), which
#: the other user cannot read, so modules it would import later (lazily) must be loaded first.
PRELOAD = ("daskperiment.experiment", "daskperiment.sweep", "daskperiment.relay", "daskperiment_local", "reprlib",
           "numpy.lib.format")


class RunAs(distributed.WorkerPlugin):
    """Switch each worker process to another user once it has started (its scratch directory too)."""

    def __init__(self, user: str) -> None:
        self.user = user

    def setup(self, worker) -> None:
        for module in PRELOAD:
            importlib.import_module(module)
        importlib.import_module("daskperiment.plugins").get_plugin_host()  # the plugins, loaded on first use
        entry = pwd.getpwnam(self.user)
        os.chown(os.path.dirname(worker.local_directory), entry.pw_uid, entry.pw_gid)
        for parent, _, files in os.walk(worker.local_directory):
            for path in (parent, *(os.path.join(parent, name) for name in files)):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)


def worker_identity(path: str) -> tuple[int, bool, bool]:
    return os.geteuid(), os.access(path, os.R_OK), os.access(path, os.W_OK)


@pytest.fixture(scope="module")
def foreign_client():
    if os.geteuid() != 0:
        pytest.skip("running workers as another user needs root (CI runs as root)")
    with tempfile.TemporaryDirectory() as scratch:  # the workers' own directories, cleaned up as the other user
        os.chmod(scratch, 0o777)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                                      worker_dashboard_address=None, local_directory=scratch) as cluster, \
                distributed.Client(cluster) as client:
            client.register_plugin(RunAs("nobody"))
            yield client


def relay_experiment(experiment_id: str):
    """A shared cached loader, a persisted step, a pure step and a result saving metrics."""
    ex = daskperiment.Experiment(id=experiment_id)
    a = ex.parameter("a")
    b = ex.parameter("b", default=1)

    @ex(cache=True)
    def load():
        return np.arange(5.0)

    @ex.persist
    def scale(data, a):
        return data * a  # an array: persisted as .npy, no pickle key needed on the workers

    @ex
    def stamp(a):
        return time.time_ns()  # declared pure, but is not: the purity check must notice

    @ex.result
    def score(scaled, b, stamped):
        for epoch in range(50):
            ex.save_metric("loss", epoch=epoch, value=float(scaled.sum()) / (epoch + b))
        ex.save_metrics("grad", np.arange(3), np.full(3, b))
        return float(scaled.sum() / b)

    return ex, score(scale(load(), a), b, stamp(a))


def test_workers_that_cannot_write_the_backend_record_everything_through_the_driver(foreign_client, caplog):
    ex, result = relay_experiment("relayed")
    store = str(ex.backend.path)
    identities = foreign_client.run(worker_identity, store)
    assert all(identity == (pwd.getpwnam("nobody").pw_uid, False, False) for identity in identities.values())

    caplog.set_level(logging.WARNING)
    frame = ex.sweep(result, a=[1, 2], b=[1, 2, 4]).compute(seed=3, scheduler=foreign_client)
    assert frame["Success"].all(), frame["Description"].tolist()
    trial_ids = [int(t) for t in frame.index]
    assert frame["Result"].tolist() == [10.0 * a / b for a in (1, 2) for b in (1, 2, 4)]
    loss = ex.load_metric("loss", trial_id=trial_ids)
    assert loss.shape == (50, 6) and loss.loc[0].tolist() == [10.0 * a / b for a in (1, 2) for b in (1, 2, 4)]
    assert ex.load_metric("grad", trial_id=trial_ids).loc[2].tolist() == [1, 2, 4, 1, 2, 4]
    for trial_id, a in zip(trial_ids, frame["a"]):
        assert ex.get_persisted("scale", trial_id).tolist() == (np.arange(5.0) * a).tolist()

    records = ex.backend.load_trials(trial_ids)
    assert [r["shared_steps"] for r in records] == ["load,stamp"] * 6  # stamp(a) is shared by trials of one a
    calls = [(step, len(c)) for r in records for step, c in sorted(r["steps"].items())]
    assert calls[:4] == [("load", 1), ("scale", 1), ("score", 1), ("stamp", 1)]  # shared steps ran in the first
    assert sorted(set(calls)) == [("load", 1), ("scale", 1), ("score", 1), ("stamp", 1)]
    assert sorted(calls).count(("load", 1)) == 1 and sorted(calls).count(("stamp", 1)) == 2
    assert sorted(calls).count(("scale", 1)) == sorted(calls).count(("score", 1)) == 6
    load_call, = records[0]["steps"]["load"]
    assert load_call["cache"] == "miss" and load_call["input"] and load_call["output"]
    assert len(ex.backend.cached_entries()) == 1  # the worker's cache entry, written by the driver

    again = ex.sweep(result, a=[1], b=[1]).compute(seed=4, scheduler=foreign_client)
    assert again["Success"].all()
    impure = [m for m in caplog.messages if "Experiment step result is changed with the same input: (step: stamp"
              in m]
    assert impure, caplog.messages  # the worker's purity hashes reached the record

    single = result.with_parameters(a=3, b=2).compute(seed=5, scheduler=foreign_client)
    trial_id = ex.trial_id
    assert single == 15.0
    record, = ex.backend.load_trials([trial_id])
    assert record["success"] and set(record["steps"]) == {"load", "scale", "stamp", "score"}
    assert ex.load_metric("loss", trial_id=trial_id)[trial_id].iloc[-1] == pytest.approx(30.0 / 51)
    assert ex.get_persisted("scale", trial_id).tolist() == (np.arange(5.0) * 3).tolist()
    hit, = ex.backend.load_trials([trial_id])[0]["steps"]["load"]
    assert hit["cache"] == "miss"  # the workers cannot read the cache: they compute, the driver stores


def test_a_failing_trial_on_a_foreign_worker_keeps_what_it_recorded(foreign_client):
    ex = daskperiment.Experiment(id="relayed_failure")
    d = ex.parameter("d")

    @ex.result
    def invert(d):
        ex.save_metric("tries", epoch=0, value=d)
        return 1 / d

    with pytest.raises(ZeroDivisionError):
        invert(d).with_parameters(d=0).compute(scheduler=foreign_client)
    frame = ex.sweep(invert(d), d=[0, 2]).compute(scheduler=foreign_client)
    assert frame["Success"].tolist() == [False, True]
    trial_ids = [1, *frame.index]
    assert ex.load_metric("tries", trial_id=trial_ids).loc[0].tolist() == [0, 0, 2]
    for record in ex.backend.load_trials(trial_ids[:2]):
        call, = record["steps"]["invert"]
        assert call["error"] == "ZeroDivisionError(division by zero)"


def test_the_processes_scheduler_relays_too(tmp_path):
    ex, result = relay_experiment("relayed_processes")
    frame = ex.sweep(result, a=[1, 2], b=[1]).compute(seed=1, scheduler="processes")
    assert frame["Success"].all()
    assert ex.load_metric("loss", trial_id=list(frame.index)).shape == (50, 2)
    assert all(set(r["steps"]) >= {"scale", "stamp", "score"} for r in ex.backend.load_trials(list(frame.index)))
    value = result.with_parameters(a=1, b=2).compute(scheduler="processes")
    assert value == 5.0 and set(ex.backend.load_trials([ex.trial_id])[0]["steps"]) == {"load", "scale", "stamp",
                                                                                         "score"}


# ---- a worker killed from outside mid-sweep -----------------------------------------------------------------
def test_a_worker_killed_mid_sweep_leaves_every_trial_recorded():
    ex = daskperiment.Experiment(id="killed")
    d = ex.parameter("d")

    @ex.result
    def slow(d):
        ex.save_metric("started", epoch=0, value=d)
        time.sleep(0.2)
        return d

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        victim = min(client.run(os.getpid).values())
        threading.Timer(1.0, os.kill, (victim, signal.SIGKILL)).start()
        frame = ex.sweep(slow(d), d=list(range(30))).compute(scheduler=client)
    assert len(frame) == 30 and len(ex.get_history()) == 30
    ok = frame["Success"]
    lost = frame["Description"].astype(object).fillna("").str.match(r"(KilledWorker|Cancelled: )")
    assert (ok | lost).all(), frame.loc[~(ok | lost), "Description"].tolist()
    assert ok.sum() >= 15  # the surviving worker finishes the rest
    succeeded = [int(t) for t in frame.index[ok]]
    metrics = ex.load_metric("started", trial_id=succeeded)
    assert metrics.loc[0].tolist() == frame.loc[ok, "d"].tolist()  # every finished trial's points arrived
