"""A forecasting pipeline on a daily sales table: load, build features, walk-forward backtest.

    python examples/timeseries_pipeline.py [--seed N]   # DASKPERIMENT_EXAMPLE_SIZE=small: 2 trials

The table is a CSV file (written once to ``data/sales_<size>.csv`` from a fixed generator when
missing, standing in for an export from a database). Its path is a parameter and reading it
is a step of its own: the history names the file each trial used, and the purity check warns
"Experiment step result is changed with the same input" when the file changes under the same
name. Each trial builds lag and rolling-mean features, fits a ridge regression on an
expanding window, records the mean absolute error of every fold as a metric, and returns
the mean over folds. The best trial is then recomputed from its recorded parameters and seed.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

import daskperiment

logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")

DAYS = {"small": 240, "full": 3 * 365}
GRIDS = {
    "small": {"lags": [[1, 7]], "window": [7], "alpha": [0.1, 10.0]},
    "full": {"lags": [[1], [1, 7], [1, 7, 14]], "window": [7, 28], "alpha": [0.1, 10.0]},
}

ex = daskperiment.Experiment(id="timeseries_pipeline")
data_path = ex.parameter("data_path")
lags = ex.parameter("lags")
window = ex.parameter("window")
alpha = ex.parameter("alpha")
n_folds = ex.parameter("n_folds", default=4)


def write_sales(path: Path, days: int) -> None:
    """Daily sales with a trend, a weekly cycle and noise, from a fixed generator (seed 0)."""
    generator = np.random.default_rng(0)
    index = pd.date_range("2024-01-01", periods=days, freq="D")
    weekly = np.array([0.8, 0.9, 1.0, 1.0, 1.1, 1.4, 1.3])[index.day_of_week]
    sales = (100 + 0.05 * np.arange(days)) * weekly + generator.normal(scale=5, size=days)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"date": index, "sales": sales.round(2)}).to_csv(path, index=False)


@ex
def load_sales(data_path):
    """The data-loading step: the table as the file holds it now."""
    return pd.read_csv(data_path, parse_dates=["date"], index_col="date")


@ex
def make_features(sales, lags, window):
    """Lagged sales, a rolling mean of yesterday's window, and the day of the week (one-hot)."""
    frame = pd.DataFrame({"target": sales["sales"]})
    for lag in lags:
        frame[f"lag_{lag}"] = sales["sales"].shift(lag)
    frame[f"mean_{window}"] = sales["sales"].shift(1).rolling(window).mean()
    frame = frame.join(pd.get_dummies(sales.index.day_of_week, prefix="dow", dtype=float).set_index(sales.index))
    return frame.dropna()


@ex.result
def backtest(features, alpha, n_folds):
    """Expanding-window backtest: fit on everything before a fold, score the fold (MAE)."""
    x, y = features.drop(columns="target").to_numpy(), features["target"].to_numpy()
    edges = np.linspace(len(y) // 2, len(y), n_folds + 1).astype(int)
    errors = []
    for fold, (start, stop) in enumerate(itertools.pairwise(edges)):
        model = Ridge(alpha=alpha).fit(x[:start], y[:start])
        error = float(np.mean(np.abs(model.predict(x[start:stop]) - y[start:stop])))
        ex.save_metric("fold_mae", epoch=fold, value=error)
        errors.append(error)
    return round(float(np.mean(errors)), 6)


mean_error = backtest(make_features(load_sales(data_path), lags, window), alpha, n_folds)


def search(points: list[dict], seed: int) -> list[int]:
    """One trial per grid point; returns their trial ids."""
    ids = []
    for point in points:
        ex.set_parameters(**point)
        mean_error.compute(seed=seed)
        ids.append(ex.trial_id)
    return ids


def example_size() -> str:
    """``DASKPERIMENT_EXAMPLE_SIZE``: ``small`` (what the tests run) or ``full`` (the default)."""
    size = os.environ.get("DASKPERIMENT_EXAMPLE_SIZE", "full")
    if size not in ("small", "full"):
        raise SystemExit(f"DASKPERIMENT_EXAMPLE_SIZE must be 'small' or 'full', got {size!r}")
    return size


def check_reproduces(trial_id: int) -> None:
    """Re-run the trial with its recorded parameters and seed; stop when it comes out different."""
    report = ex.reproduce(trial_id)
    print(report)
    if not report.identical:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = example_size()
    path = Path("data") / f"sales_{size}.csv"
    if not path.exists():
        write_sales(path, DAYS[size])
    axes = GRIDS[size]
    points = [{"data_path": str(path), **dict(zip(axes, values))} for values in itertools.product(*axes.values())]
    trial_ids = search(points, args.seed)
    history = ex.get_history().loc[trial_ids]
    best = int(history["Result"].idxmin())
    print(history[["lags", "window", "alpha", "Result"]].to_string())
    print(ex.load_metric("fold_mae", trial_id=best).to_string())
    print(f"best trial {best}: mean absolute error {history.loc[best, 'Result']:.3f}")
    check_reproduces(best)


if __name__ == "__main__":
    main()
