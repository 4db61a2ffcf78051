"""The torch seeder: torch gets the trial seed even where nothing has imported it yet.

Registered through the ``daskperiment`` entry point ``seed_torch``. The core seeds torch
only when ``torch`` is already in :data:`sys.modules` (importing it just to seed it would
cost every process a second, most of which never use torch). A step that imports torch in
its body is then unseeded in a fresh process or on a fresh Dask worker: the seeders run
before the step, when torch is not imported yet, and torch draws from its fixed default
seed whatever the trial seed. Installing this plugin declares that trials use torch: it
imports torch when it is installed and seeds it with the value the core would use.
"""

from __future__ import annotations

import functools
import importlib.util
from types import ModuleType

from daskperiment import hookimpl

__all__ = ["seed_random_state", "torch_module"]


@functools.cache
def torch_module() -> ModuleType | None:
    """``torch``, imported on first use, or ``None`` when it is not installed (checked once)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


@hookimpl
def seed_random_state(seed: int) -> None:
    """Seed torch's generators on every device (``torch.manual_seed``) with ``seed`` mod 2**32.

    The same value the core seeds numpy and an already imported torch with, so the two
    seeders agree whichever runs first.
    """
    torch = torch_module()
    if torch is not None:
        torch.manual_seed(seed % 2**32)
