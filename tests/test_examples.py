"""The examples in ``examples/`` run at their small size, and run again the same.

Each example searches a small grid and ends by re-running its best trial with
``ex.reproduce`` (recorded parameters and seed; the script exits non-zero unless it comes out
identical). Here each
runs twice, in two fresh processes with their own storage and the same seed: the two
histories must agree trial by trial.
"""

from __future__ import annotations

import os
import subprocess
import sys
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


def run_twice(script: str, tmp_path: Path, seed: int = 3) -> list[Path]:
    """Both runs at once (they share nothing but the code); each in its own working directory."""
    env = {**os.environ, "DASKPERIMENT_EXAMPLE_SIZE": "small"}
    workdirs = [tmp_path / "first", tmp_path / "second"]
    processes = []
    for workdir in workdirs:
        workdir.mkdir()
        processes.append(subprocess.Popen([sys.executable, str(ROOT / "examples" / script), "--seed", str(seed)],
                                          cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{script} exited {process.returncode}:\n{out}\n{err[-4000:]}"
        assert " reproduced identically as trial " in out, out
    return workdirs


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs_and_reproduces(script, tmp_path):
    if script == "torch_training.py":
        pytest.importorskip("torch", reason="TORCH NOT INSTALLED: examples/torch_training.py not run "
                                            "(pip install torch; the CPU build is enough)")
    experiment_id, shown, metric = EXAMPLES[script]
    runs = []
    for workdir in run_twice(script, tmp_path):
        ex = daskperiment.Experiment(experiment_id, backend=workdir / "daskperiment_cache" / experiment_id)
        history = ex.get_history()
        assert history["Success"].all() and len(history) >= 3  # the grid, then the reproduced best trial
        assert not ex.load_metric(metric, trial_id=list(history.index)).isna().all().any()
        runs.append((history[[*shown, "Result"]], ex))
    (first, ex), (second, _) = runs
    assert first.equals(second), f"{first}\n!=\n{second}"
    best = first["Result"].iloc[:-1].idxmin() if metric == "fold_mae" else first["Result"].iloc[:-1].idxmax()
    assert first["Result"].iloc[-1] == first.loc[best, "Result"]  # the last trial recomputed the best one
    if script == "sklearn_digits.py":
        model = ex.get_persisted("train", trial_id=int(best))
        assert type(model).__name__ == "SGDClassifier" and model.coef_.shape == (10, 64)
