"""A hyper-parameter search over scikit-learn's SGDClassifier on its bundled digits data.

    python examples/sklearn_digits.py [--seed N]        # DASKPERIMENT_EXAMPLE_SIZE=small: 2 trials

Each trial trains a linear classifier epoch by epoch with ``partial_fit``, records the
training log-loss and the validation accuracy per epoch as metrics, persists the fitted model
and returns the test accuracy. After the search the best trial is recomputed from its recorded
parameters and seed, and must give the same accuracy. Last, it prints the commands that show the trials in the
dashboard and in an offline report.

The data never leaves the machine (``sklearn.datasets.load_digits`` ships with scikit-learn).
The search is one sweep (:func:`search`): every grid point is a trial of one Dask graph, and
``load_data``, whose inputs are the same for every point, runs once.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

import daskperiment
from daskperiment.seeding import rng

logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")

GRIDS = {
    "small": {"alpha": [1e-4, 1e-2], "penalty": ["l2"], "epochs": [3]},
    "full": {"alpha": [1e-5, 1e-4, 1e-3, 1e-2], "penalty": ["l2", "elasticnet"], "epochs": [15]},
}

ex = daskperiment.Experiment(id="sklearn_digits")
test_size = ex.parameter("test_size", default=0.25)
alpha = ex.parameter("alpha")
penalty = ex.parameter("penalty")
epochs = ex.parameter("epochs")


@ex
def load_data(test_size):
    """The digits, pixels scaled to [0, 1], split into train and test sets the same way every time."""
    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=test_size, random_state=0, stratify=y)


@ex.persist
def train(data, alpha, penalty, epochs):
    """``epochs`` passes of ``partial_fit`` over shuffled training data; the fitted model is persisted."""
    x_train, x_test, y_train, y_test = data
    generator = rng()  # this step's own generator: derived from the trial seed and the inputs
    model = SGDClassifier(loss="log_loss", alpha=alpha, penalty=penalty,
                          random_state=int(generator.integers(2**31)))
    classes = np.unique(y_train)
    for epoch in range(epochs):
        order = generator.permutation(len(y_train))
        model.partial_fit(x_train[order], y_train[order], classes=classes)
        ex.save_metric("train_log_loss", epoch=epoch, value=log_loss(y_train, model.predict_proba(x_train)))
        ex.save_metric("val_accuracy", epoch=epoch, value=model.score(x_test, y_test))
    return model


@ex.result
def test_accuracy(model, data):
    _, x_test, _, y_test = data
    return float(model.score(x_test, y_test))


data = load_data(test_size)  # one call, used by both steps: loaded once per sweep
score = test_accuracy(train(data, alpha, penalty, epochs), data)


def grid(size: str) -> list[dict]:
    axes = GRIDS[size]
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def search(points: list[dict], seed: int) -> list[int]:
    """All grid points as one sweep: one Dask graph, the data loaded once; returns the trial ids."""
    sweep = ex.sweep(score, points)
    sweep.compute(seed=seed)
    return list(sweep.trial_ids)

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
    trial_ids = search(grid(example_size()), args.seed)
    history = ex.get_history().loc[trial_ids]
    best = int(history["Result"].idxmax())
    print(history[["alpha", "penalty", "epochs", "Result"]].to_string())
    print(ex.load_metric("val_accuracy", trial_id=best).tail(3).to_string())
    model = ex.get_persisted("train", trial_id=best)
    print(f"best trial {best}: test accuracy {history.loc[best, 'Result']:.4f}, "
          f"{type(model).__name__} with {model.coef_.shape[1]} inputs")
    check_reproduces(best)
    print(f"See every trial, its metric curves and the compare view in the dashboard (then open "
          f"http://127.0.0.1:5000/), or in one offline HTML file:\n"
          f"  daskperimentboard {ex.id}\n"
          f"  daskperiment report {ex.id} -o {ex.id}.html")


if __name__ == "__main__":
    main()
