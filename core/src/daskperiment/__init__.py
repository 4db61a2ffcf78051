"""daskperiment: reproducible machine-learning experiments on Dask.

Importing this package has no side effects: no files, no log handlers, no
environment collection, no plugin loading (plugins load on first use). The
public classes load on first access, so ``import daskperiment.backends`` (what
a backend plugin needs) does not import the experiment machinery above it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (BackendError, BackendUnavailableError, DaskperimentError, DuplicateStepError,
                     ExperimentNotFoundError, InvalidArgumentError, LockedTrialError, MetricNotFoundError,
                     MetricNotInTrialError, ParameterUndeclaredError, ParameterUndefinedError,
                     PersistedResultNotFoundError, ScriptArgumentError, TrialIDNotFoundError,
                     TrialNotFoundError, UnknownBackendError, UntrackedComputeError, UsageError)
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .backends import Backend
    from .experiment import Experiment
    from .parameters import Parameter
    from .sweep import Sweep

__version__ = "1.0.0"

#: Public name → the module that defines it, imported on first access (PEP 562).
_LAZY = {"Experiment": "daskperiment.experiment", "Parameter": "daskperiment.parameters",
         "Backend": "daskperiment.backends", "Sweep": "daskperiment.sweep"}

__all__ = [
    "Experiment", "Parameter", "Backend", "Sweep", "hookimpl", "__version__",
    "DaskperimentError", "TrialIDNotFoundError", "ParameterUndefinedError", "ParameterUndeclaredError",
    "LockedTrialError", "BackendError", "UnknownBackendError", "BackendUnavailableError",
    "PersistedResultNotFoundError", "MetricNotFoundError", "TrialNotFoundError", "ScriptArgumentError",
    "UsageError", "UntrackedComputeError", "InvalidArgumentError", "DuplicateStepError", "ExperimentNotFoundError",
    "MetricNotInTrialError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'daskperiment' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
