"""The ``daskperiment`` command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import daskperiment


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "daskperiment.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_history_code_and_metric_commands(tmp_path, quickstart):
    ex, a, b, prepare_data, calculate_score = quickstart

    @ex.result
    def calculate_score(s):
        ex.save_metric("loss", epoch=0, value=s / 10)
        return 10 / s

    ex.set_parameters(a=1, b=4)
    calculate_score(prepare_data(a, b)).compute()
    out = cli("history", "quickstart_pj", "--csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "Trial ID,a,b,Result,Success,Finished,Process Time,Description"
    assert out.stdout.splitlines()[1].startswith("1,1,4,2.0,True,")
    code = cli("code", "quickstart_pj", "--trial-id", "1", cwd=tmp_path)
    assert "def calculate_score(s):" in code.stdout
    metric = cli("metric", "quickstart_pj", "loss", "--trial-id", "1", "--csv", cwd=tmp_path)
    assert metric.stdout.split() == ["Epoch,1", "0,0.5"]


def test_cli_errors_are_one_line(tmp_path):
    out = cli("history", "bad-id", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("daskperiment: error: Experiment ID must be")
    out = cli("history", "x", "--backend", "nosuch://h", cwd=tmp_path)
    assert out.returncode == 2 and "Unknown backend URI" in out.stderr


def test_backend_argument():
    import pathlib

    from daskperiment.cli import backend_argument

    assert backend_argument("redis://h:1/0") == "redis://h:1/0"
    assert backend_argument("some/dir") == pathlib.Path("some/dir")
    assert backend_argument(None) is None
    assert daskperiment.__version__ == "1.0.0"


def test_code_without_trial_id_shows_the_last_trial_and_version(tmp_path, quickstart):
    """Item 12 of the hardening issue: ``code ID`` alone is the last trial's code; ``--version``."""
    ex, a, b, prepare_data, calculate_score = quickstart
    ex.set_parameters(a=1, b=4)
    calculate_score(prepare_data(a, b)).compute()

    @ex.result
    def calculate_score(s):  # the second trial runs changed code
        return 20 / s

    calculate_score(prepare_data(a, b)).compute()
    code = cli("code", "quickstart_pj", cwd=tmp_path)
    assert code.returncode == 0 and code.stdout == ex.get_code(trial_id=2) and "20 / s" in code.stdout
    version = cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"daskperiment {daskperiment.__version__}"



@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [["plugins"], ["plugins", "--json"], ["--version"], ["--help"]])
def test_a_closed_pipe_ends_the_command_quietly(tmp_path, args, unbuffered):
    """``daskperiment plugins | head -1``: the reader is gone before the command writes (here
    closed before it starts, so every write fails). No traceback, no "Exception ignored" at
    exit; the status of a command ended by SIGPIPE, as ``cat`` or ``git`` give. (Unbuffered,
    argparse's own ``--help``/``--version`` output ignores the failed write and exits 0.)"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "daskperiment.cli", *args], cwd=tmp_path, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    finally:
        os.close(write_end)
    status = 0 if unbuffered and args[0].startswith("--") else 128 + signal.SIGPIPE
    assert (done.returncode, done.stderr) == (status, "")
