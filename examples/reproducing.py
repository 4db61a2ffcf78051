"""Recompute a recorded trial from what its record holds, for the examples' reproduce checks.

A trial records its parameters and its seed; computing the same graph again with them must
give the recorded result. The examples call :func:`reproduce` on their best trial and stop
with an error when it does not hold.
"""

from __future__ import annotations

import logging
from typing import Any

import daskperiment

logger = logging.getLogger("examples")


def reproduce(ex: daskperiment.Experiment, result: Any, trial_id: int) -> tuple[Any, Any]:
    """``(recorded, recomputed)`` result of ``trial_id``: ``result`` recomputed as a new trial with
    the recorded parameters and seed. Raises ``AssertionError`` when they differ."""
    ex.set_parameters(**ex.get_parameters(trial_id=trial_id))
    seed = int(ex.get_history(verbose=True).loc[trial_id, "Seed"])
    recorded, recomputed = ex.get_result(trial_id), result.compute(seed=seed)
    if recorded != recomputed:
        raise AssertionError(f"trial {trial_id} did not reproduce: recorded {recorded!r}, recomputed {recomputed!r}")
    logger.info("Trial %d reproduced as trial %d: %r", trial_id, ex.trial_id, recomputed)
    return recorded, recomputed


def example_size(default: str = "full") -> str:
    """``DASKPERIMENT_EXAMPLE_SIZE`` (``small`` in the tests, ``full`` otherwise)."""
    import os

    size = os.environ.get("DASKPERIMENT_EXAMPLE_SIZE", default)
    if size not in ("small", "full"):
        raise SystemExit(f"DASKPERIMENT_EXAMPLE_SIZE must be 'small' or 'full', got {size!r}")
    return size
