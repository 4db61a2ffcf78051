"""The torch seeder: torch gets the trial seed even where nothing has imported it yet.

Registered through the ``daskperiment`` entry point ``seed_torch``. The core seeds torch
(``torch.manual_seed``, every device) only when ``torch`` is already in :data:`sys.modules`:
importing it just to seed it would cost every process a second, and most never use torch.
A step that imports torch in its body is then unseeded in a fresh process or on a fresh Dask
worker: the seeders run before the step, when torch is not imported yet, and torch draws
from a seed of its own whatever the trial seed. Installing this plugin declares that trials
use torch: before the seeders run, it imports torch when it is installed, and the core's
seeder then seeds it like any imported torch.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys

from daskperiment import hookimpl

__all__ = ["seed_random_state", "torch_installed"]


@functools.cache
def torch_installed() -> bool:
    """Whether ``torch`` can be imported (looked up once per process)."""
    return importlib.util.find_spec("torch") is not None


@hookimpl(tryfirst=True)
def seed_random_state(seed: int) -> None:
    """Import torch when it is installed and not imported yet; the core's seeder, which runs
    next, seeds it with ``seed``.

    ``tryfirst``: importing torch can draw from Python's :mod:`random`, which the core seeds
    right after, so a step's draws are the same whether this process imported torch just now
    or long ago.
    """
    if "torch" not in sys.modules and torch_installed():
        importlib.import_module("torch")
