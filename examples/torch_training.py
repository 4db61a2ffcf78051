"""A small PyTorch training loop on the CPU, seeded through the torch seeder plugin.

    python examples/torch_training.py [--seed N]        # needs torch (any build) and daskperiment[torch]

Two trials train a small multi-layer perceptron on a synthetic two-class problem with
different learning rates, record the loss per epoch, persist the trained weights and return
the test accuracy; the best trial is then recomputed from its recorded parameters and seed
and must give the same accuracy.

The training step imports torch in its body, the usual way to keep a heavy library off a
Dask driver. daskperiment's core seeds torch only once something has imported it, so on a
fresh worker, or in the first trial of a fresh process, torch would draw from a seed of its
own whatever the trial seed is. The ``daskperiment-seed-torch`` plugin imports torch before
the seeders run, so it is seeded before every step: the weight initialisation and the batch
order then follow the trial seed. Without torch or without the plugin this script says so and exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys

import daskperiment
from daskperiment.plugins import list_plugins
from daskperiment.seeding import rng

logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")

SIZES = {"small": {"n_samples": 400, "epochs": 4}, "full": {"n_samples": 4000, "epochs": 20}}
LEARNING_RATES = [0.01, 0.05]

ex = daskperiment.Experiment(id="torch_training")
n_samples = ex.parameter("n_samples")
hidden = ex.parameter("hidden", default=16)
lr = ex.parameter("lr")
epochs = ex.parameter("epochs")
batch_size = ex.parameter("batch_size", default=32)


@ex
def make_data(n_samples):
    """Two interleaved half circles with noise (numpy, from the step's own generator)."""
    import numpy as np

    generator = rng()
    angle = generator.uniform(0, np.pi, n_samples)
    label = generator.integers(0, 2, n_samples)
    x = np.stack([np.cos(angle) + label, np.sin(angle) * (1 - 2 * label) + 0.5 * label], axis=1)
    x += generator.normal(scale=0.15, size=x.shape)
    split = int(0.8 * n_samples)
    return x[:split], label[:split], x[split:], label[split:]


def mlp(hidden):
    import torch

    return torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))


@ex.persist
def train(data, hidden, lr, epochs, batch_size):
    """Adam on cross-entropy; torch's global generator decides the initial weights and the batch order."""
    import torch

    x_train, y_train, _, _ = data
    x, y = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train)
    model = mlp(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        order = torch.randperm(len(y))
        total = 0.0
        for start in range(0, len(y), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        ex.save_metric("train_loss", epoch=epoch, value=total / len(y))
    # tensors hash from their values through the torch seeder's hash_value, so the purity check
    # and ex.reproduce compare them across processes
    return model.state_dict()


@ex.result
def test_accuracy(weights, data, hidden):
    import torch

    _, _, x_test, y_test = data
    model = mlp(hidden)
    model.load_state_dict(weights)
    with torch.no_grad():
        predicted = model(torch.tensor(x_test, dtype=torch.float32)).argmax(dim=1).numpy()
    return float((predicted == y_test).mean())


data = make_data(n_samples)
accuracy = test_accuracy(train(data, hidden, lr, epochs, batch_size), data, hidden)


def check_requirements() -> None:
    if importlib.util.find_spec("torch") is None:
        sys.exit("torch_training.py: torch is not installed: pip install torch (the CPU build is enough)")
    if "seed_torch" not in {row["name"] for row in list_plugins()}:
        sys.exit("torch_training.py: the torch seeder plugin is not installed: pip install 'daskperiment[torch]' "
                 "(from a checkout: pip install -e plugins/seed-torch)")


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
    check_requirements()
    trial_ids = []
    for rate in LEARNING_RATES:
        ex.set_parameters(lr=rate, **SIZES[example_size()])
        accuracy.compute(seed=args.seed)
        trial_ids.append(ex.trial_id)
    history = ex.get_history().loc[trial_ids]
    best = int(history["Result"].idxmax())
    print(history[["lr", "epochs", "Result"]].to_string())
    print(ex.load_metric("train_loss", trial_id=trial_ids).to_string())
    print(f"best trial {best}: test accuracy {history.loc[best, 'Result']:.4f}")
    check_reproduces(best)


if __name__ == "__main__":
    main()
