"""daskperiment: reproducible machine-learning experiments on Dask.

Importing this package has no side effects: no files, no log handlers, no
environment collection, no plugin loading (plugins load on first use).
"""

from __future__ import annotations

from .backends import Backend
from .errors import (BackendError, BackendUnavailableError, DaskperimentError, LockedTrialError,
                     MetricNotFoundError, ParameterUndeclaredError, ParameterUndefinedError,
                     PersistedResultNotFoundError, ScriptArgumentError, TrialIDNotFoundError,
                     TrialNotFoundError, UnknownBackendError, UsageError)
from .experiment import Experiment
from .hookspecs import hookimpl
from .parameters import Parameter

__version__ = "1.0.0.dev0"

__all__ = [
    "Experiment", "Parameter", "Backend", "hookimpl", "__version__",
    "DaskperimentError", "TrialIDNotFoundError", "ParameterUndefinedError", "ParameterUndeclaredError",
    "LockedTrialError", "BackendError", "UnknownBackendError", "BackendUnavailableError",
    "PersistedResultNotFoundError", "MetricNotFoundError", "TrialNotFoundError", "ScriptArgumentError",
    "UsageError",
]
