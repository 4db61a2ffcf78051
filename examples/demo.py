"""A real experiment on the embedded local backend: run ``python examples/demo.py``.

It records several trials of a small model-fitting experiment (parameters, per-epoch
metrics, a persisted intermediate result, a failing trial) and prints the history.
"""

import logging

import numpy as np

import daskperiment

logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")

ex = daskperiment.Experiment(id="demo")
n_samples = ex.parameter("n_samples", default=200)
learning_rate = ex.parameter("learning_rate")
epochs = ex.parameter("epochs", default=50)


@ex.persist
def make_data(n_samples):
    """A noisy linear dataset (persisted: reload it with ex.get_persisted)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_samples, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + rng.normal(scale=0.1, size=n_samples)
    return x, y


@ex.result
def fit(data, learning_rate, epochs):
    """Gradient descent; logs the training loss per epoch; returns the final loss."""
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    x, y = data
    w = np.zeros(x.shape[1])
    for epoch in range(epochs):
        residual = x @ w - y
        loss = float(np.mean(residual**2))
        ex.save_metric("loss", epoch=epoch, value=loss)
        w -= learning_rate * 2 * x.T @ residual / len(y)
    return float(np.mean((x @ w - y) ** 2))


score = fit(make_data(n_samples), learning_rate, epochs)

for lr in (0.01, 0.05, 0.1):
    ex.set_parameters(learning_rate=lr)
    score.compute(seed=1)

ex.set_parameters(learning_rate=-1.0)
try:
    score.compute(seed=1)
except ValueError as exc:
    logging.info("The failing trial was recorded: %s", exc)

last = ex.trial_id
print(ex.get_history().to_string())
print(ex.load_metric("loss", trial_id=[last - 3, last - 2, last - 1]).tail(3).to_string())
print("persisted data shape of the last successful trial:", ex.get_persisted("make_data", last - 1)[0].shape)
