"""Trials whose process is gone read as abandoned, never "not finished" forever (issue 15, item 17).

The status is computed when the history is read (readers never write it): on this host a
trial whose pid is not alive is abandoned; anywhere, a trial without a heartbeat for
``DASKPERIMENT_HEARTBEAT_TIMEOUT`` seconds is. Killing a real process mid-trial is in
``test_concurrency.py``; storing heartbeats on every backend is in the conformance suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import daskperiment
from daskperiment import heartbeat, trial
from daskperiment.history import RUNNING


@pytest.fixture
def ex(tmp_path):
    return daskperiment.Experiment("abandoned", backend=tmp_path / "store")


def _start(ex, **record):
    return ex.backend.start_trial({"parameters": {"a": 1}, "seed": 1, "started": time.time(), **record})


def test_a_dead_pid_on_this_host_is_abandoned_with_why(ex):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    _start(ex, host=socket.gethostname(), pid=dead, heartbeat=time.time())
    history = ex.get_history()
    assert history["Success"].tolist() == [False]
    assert history.loc[1, "Description"] == (
        f"Abandoned: its process {dead} on this host ({socket.gethostname()}) ended before the trial completed; "
        "metrics and persisted results may be partial")
    assert ex.backend.load_trials([1])[0]["success"] is None  # computed on read, nothing written


def test_other_hosts_are_judged_by_their_heartbeat(ex, monkeypatch):
    monkeypatch.setenv(heartbeat.TIMEOUT_ENV, "60")
    now = time.time()
    _start(ex, host="elsewhere", pid=1, heartbeat=now - 5)  # beating: running
    _start(ex, host="elsewhere", pid=2, heartbeat=now - 600)  # silent for 10 minutes
    _start(ex, host="elsewhere", pid=3, started=now - 600)  # written before heartbeats: its start counts
    history = ex.get_history()
    assert history["Success"].isna().tolist() == [True, False, False] and not history["Success"][2:].any()
    assert history.loc[1, "Description"] == RUNNING
    assert history.loc[2, "Description"].startswith("Abandoned: no heartbeat from host elsewhere (pid 2) for 600 s "
                                                    "(more than 60 s)")
    assert history.loc[3, "Description"].startswith("Abandoned: no heartbeat from host elsewhere (pid 3)")


def test_a_live_pid_that_stopped_beating_is_abandoned(ex, monkeypatch):
    """A reused pid, or a start stored after it timed out: alive, but nothing beats for the trial."""
    monkeypatch.setenv(heartbeat.TIMEOUT_ENV, "60")
    _start(ex, host=socket.gethostname(), pid=os.getpid(), heartbeat=time.time() - 600)
    _start(ex, host=socket.gethostname(), pid=os.getpid(), heartbeat=time.time())
    success = ex.get_history()["Success"]
    assert success.isna().tolist() == [False, True] and not success[1]


def test_the_timeout_setting_is_checked(ex, monkeypatch):
    _start(ex, host="elsewhere", pid=1)
    monkeypatch.setenv(heartbeat.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="DASKPERIMENT_HEARTBEAT_TIMEOUT='soon': give a number of seconds greater"):
        ex.get_history()


def test_a_running_trial_beats_and_reads_as_running(ex, monkeypatch):
    monkeypatch.setattr(heartbeat, "INTERVAL", 0.05)
    monkeypatch.setattr(trial, "heartbeats", heartbeat._Heartbeats())  # a thread of this test's interval
    a = ex.parameter("a")
    inside, release = threading.Event(), threading.Event()

    @ex.result
    def slow(a):
        inside.set()
        release.wait(30)
        return a

    ex.set_parameters(a=1)
    runner = threading.Thread(target=slow(a).compute)
    runner.start()
    try:
        assert inside.wait(30)
        started = ex.backend.load_trials([1])[0]["started"]
        deadline = time.time() + 30
        while ex.backend.load_trials([1])[0]["heartbeat"] <= started and time.time() < deadline:
            time.sleep(0.05)
        assert ex.backend.load_trials([1])[0]["heartbeat"] > started
        history = ex.get_history()
        assert history["Success"].isna().tolist() == [True] and history.loc[1, "Description"] == RUNNING
    finally:
        release.set()
        runner.join(30)
    assert ex.get_history()["Success"].tolist() == [True]


def test_a_running_sweep_beats_for_all_its_trials(ex, monkeypatch):
    """One heartbeat write per interval covers every trial of the sweep."""
    from daskperiment import sweep

    monkeypatch.setattr(heartbeat, "INTERVAL", 0.05)
    monkeypatch.setattr(sweep, "heartbeats", heartbeat._Heartbeats())
    a = ex.parameter("a")

    @ex.result
    def slow(a):
        time.sleep(0.5)
        return a

    ex.sweep(slow(a), a=[1, 2]).compute(scheduler="threads")
    records = ex.backend.load_trials()
    assert [r["success"] for r in records] == [True, True]
    assert all(r["heartbeat"] > r["started"] for r in records)
