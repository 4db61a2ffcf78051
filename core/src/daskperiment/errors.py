"""Exceptions raised by daskperiment.

Every error subclasses :class:`ValueError` (as in the original daskperiment), so
existing ``except ValueError`` code keeps working, and each message names the
problem *and* the fix.
"""

from __future__ import annotations

__all__ = [
    "DaskperimentError",
    "TrialIDNotFoundError",
    "ParameterUndefinedError",
    "ParameterUndeclaredError",
    "LockedTrialError",
    "BackendError",
    "UnknownBackendError",
    "BackendUnavailableError",
    "PersistedResultNotFoundError",
    "MetricNotFoundError",
    "TrialNotFoundError",
    "MetricNotInTrialError",
    "ScriptArgumentError",
    "UsageError",
    "UntrackedComputeError",
    "InvalidArgumentError",
    "DuplicateStepError",
    "ExperimentNotFoundError",
    "PayloadError",
    "UntrustedPickleError",
]


class DaskperimentError(ValueError):
    """Base class of every daskperiment error."""


class TrialIDNotFoundError(DaskperimentError):
    """A trial id that does not exist or is not an int, or ``current_trial_id`` read outside a trial.

    As in the original, the message begins ``Unable to find trial id: <id>`` (or
    ``Trial id must be integer, given: …``) and names the experiment's last trial id.
    """


#: The name this error had before 1.0 (a separate class then); the same class now, so
#: ``except TrialNotFoundError`` keeps catching every unknown trial id.
TrialNotFoundError = TrialIDNotFoundError


class ParameterUndefinedError(DaskperimentError):
    """A parameter used by the graph has no value (and no default)."""


class ParameterUndeclaredError(DaskperimentError):
    """``set_parameters`` was given a name never declared with ``ex.parameter``."""


class LockedTrialError(DaskperimentError):
    """``ex.trial_id`` was read inside a running trial (use ``current_trial_id``)."""


class BackendError(DaskperimentError):
    """A storage backend failed; the message names the backend URI and the cause."""


class UnknownBackendError(BackendError):
    """No installed plugin can build a backend from what the user passed."""


class BackendUnavailableError(BackendError):
    """The backend's server cannot be reached (down, wrong password, connection lost)."""


class PersistedResultNotFoundError(DaskperimentError, KeyError):
    """No persisted result for that step and trial."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MetricNotFoundError(DaskperimentError, KeyError):
    """No points of that metric in the requested trial(s)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MetricNotInTrialError(TrialIDNotFoundError, MetricNotFoundError):
    """The metric exists, but an existing trial saved no points of it (the original raised
    ``TrialIDNotFoundError`` here; it is also a :class:`MetricNotFoundError`)."""


class ScriptArgumentError(DaskperimentError):
    """A command-line ``key=value`` argument is missing or malformed."""


class UsageError(DaskperimentError):
    """The plugin configuration is not allowed (e.g. blocking an essential plugin)."""


class UntrackedComputeError(DaskperimentError):
    """A trial result was given to ``dask.compute``/``persist``/``Client.compute``, which record nothing."""


class InvalidArgumentError(DaskperimentError, TypeError):
    """An argument of the wrong type or out of range (seed, metric key or value, parameter value,
    experiment id); also a :class:`TypeError`, which several of these used to be."""


class DuplicateStepError(DaskperimentError):
    """Two different steps with the same function name in one trial's graph."""


class ExperimentNotFoundError(DaskperimentError):
    """A read-only command named an experiment that has no stored trials there."""


class PayloadError(DaskperimentError):
    """A stored result cannot be decoded (unknown encoding, missing bytes, missing library)."""


class UntrustedPickleError(PayloadError):
    """A pickle whose signature does not verify with this machine's key: it is never unpickled."""
