"""The examples in ``examples/`` run at their small size, and run again the same.

Each example searches a small grid and ends by re-running its best trial with
``ex.reproduce`` (recorded parameters and seed; the script exits non-zero unless it comes out
identical). Here each
runs twice, in two fresh processes with their own storage and the same seed: the two
histories must agree trial by trial. The scikit-learn example ends by printing the commands
that show its trials in the dashboard and an offline report: both are run as printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import daskperiment
from tools.doc_examples import ROOT

pytestmark = pytest.mark.slow

EXAMPLES = {  # script: experiment id, the parameters shown by the history, the metric recorded
    "sklearn_digits.py": ("sklearn_digits", ["alpha", "penalty", "epochs"], "val_accuracy"),
    "timeseries_pipeline.py": ("timeseries_pipeline", ["lags", "window", "alpha"], "fold_mae"),
    "torch_training.py": ("torch_training", ["lr", "epochs"], "train_loss"),
}


def run_twice(script: str, tmp_path: Path, seed: int = 3) -> list[tuple[Path, str]]:
    """Both runs at once (they share nothing but the code); each in its own working directory."""
    env = {**os.environ, "DASKPERIMENT_EXAMPLE_SIZE": "small"}
    workdirs = [tmp_path / "first", tmp_path / "second"]
    processes, outputs = [], []
    for workdir in workdirs:
        workdir.mkdir()
        processes.append(subprocess.Popen([sys.executable, str(ROOT / "examples" / script), "--seed", str(seed)],
                                          cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{script} exited {process.returncode}:\n{out}\n{err[-4000:]}"
        assert " reproduced identically as trial " in out, out
        outputs.append(out)
    return list(zip(workdirs, outputs))


def printed_commands(out: str) -> dict[str, list[str]]:
    """The commands the example printed for the user, by program name."""
    commands = [line.split() for line in out.splitlines() if line.startswith("  daskperiment")]
    return {command[0]: command for command in commands}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_dashboard_commands(out: str, workdir: Path, experiment_id: str) -> None:
    """Run the printed ``daskperiment report`` and ``daskperimentboard`` (on a free port) in the
    example's working directory, as the user would: the report file and the runs page name every trial."""
    commands = printed_commands(out)
    assert set(commands) == {"daskperimentboard", "daskperiment"}, out
    scripts = Path(sys.executable).parent  # this environment's console scripts
    report = commands["daskperiment"]
    done = subprocess.run([str(scripts / report[0]), *report[1:]], cwd=workdir, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert experiment_id in (workdir / report[report.index("-o") + 1]).read_text()
    port = free_port()
    board = commands["daskperimentboard"]
    log = workdir / "dashboard.log"
    with log.open("w") as stderr:
        server = subprocess.Popen([str(scripts / board[0]), *board[1:], "--port", str(port)], cwd=workdir,
                                  stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline, page = time.monotonic() + 60, None
        while page is None and server.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/experiment/{experiment_id}", timeout=10) as answer:
                    page = answer.read().decode()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert page is not None, f"the dashboard did not answer (exit status {server.poll()}):\n{log.read_text()}"
        assert f"Experiment {experiment_id}" in page
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs_and_reproduces(script, tmp_path):
    if script == "torch_training.py":
        pytest.importorskip("torch", reason="TORCH NOT INSTALLED: examples/torch_training.py not run "
                                            "(pip install torch; the CPU build is enough)")
    experiment_id, shown, metric = EXAMPLES[script]
    runs = []
    for workdir, out in run_twice(script, tmp_path):
        ex = daskperiment.Experiment(experiment_id, backend=workdir / "daskperiment_cache" / experiment_id)
        history = ex.get_history()
        assert history["Success"].all() and len(history) >= 3  # the grid, then the reproduced best trial
        assert not ex.load_metric(metric, trial_id=list(history.index)).isna().all().any()
        runs.append((history[[*shown, "Result"]], ex))
    if script == "sklearn_digits.py":
        check_dashboard_commands(out, workdir, experiment_id)
    (first, ex), (second, _) = runs
    assert first.equals(second), f"{first}\n!=\n{second}"
    best = first["Result"].iloc[:-1].idxmin() if metric == "fold_mae" else first["Result"].iloc[:-1].idxmax()
    assert first["Result"].iloc[-1] == first.loc[best, "Result"]  # the last trial recomputed the best one
    if script == "sklearn_digits.py":
        model = ex.get_persisted("train", trial_id=int(best))
        assert type(model).__name__ == "SGDClassifier" and model.coef_.shape == (10, 64)
