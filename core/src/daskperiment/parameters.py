"""Experiment parameters: named inputs whose values change from trial to trial."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Mapping

import dask
from dask.delayed import Delayed

from .errors import InvalidArgumentError, ParameterUndeclaredError, ParameterUndefinedError
from .serialization import plain_parameter


class _Undefined:
    def __repr__(self) -> str:
        return "Undefined"

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()


def _parameter_value(store: ParameterStore, name: str) -> Any:
    """Task body when a parameter is computed outside a trial: its current value."""
    return store.value(name)


class ParameterStore:
    """Declared parameters, their current values and defaults (one per Experiment)."""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self.token = uuid.uuid4().hex[:12]
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "token": self.token, "_values": dict(self._values)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def key(self, name: str) -> str:
        return f"param-{name}-{self.token}"

    def declare(self, name: str, default: Any = UNDEFINED) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgumentError(
                f"Parameter name must be valid as python identifier, given: {name!r}{type(name)}. It becomes "
                "a keyword of ex.set_parameters(...) and a history column.")
        if default is not UNDEFINED:
            plain_parameter(name, default)
        with self._lock:
            if name not in self._values or default is not UNDEFINED:
                self._values[name] = default

    def _check_declared(self, values: Mapping[str, Any]) -> None:
        unknown = sorted(set(values) - set(self._values))
        if unknown:
            raise ParameterUndeclaredError(
                f"Parameter is not declared. Use Experiment.parameter to declare: {', '.join(unknown)} "
                f"(experiment {self.experiment_id!r} declares: {', '.join(sorted(self._values)) or 'none'}; "
                f"add {unknown[0]} = ex.parameter({unknown[0]!r}) before setting it).")

    def set(self, **values: Any) -> None:
        self._check_declared(values)
        for name, value in values.items():
            plain_parameter(name, value)
        with self._lock:
            self._values.update(values)

    def value(self, name: str) -> Any:
        value = self._values.get(name, UNDEFINED)
        if value is UNDEFINED:
            raise ParameterUndefinedError(
                f"Parameters are not defined. Use Experiment.set_parameters to initialize: {name}. Call "
                f"ex.set_parameters({name}=...) or pass {name}=... on the command line (or give "
                f"ex.parameter({name!r}, default=...)).")
        return value

    def declared(self) -> dict[str, Any]:
        """Every declared name with its current value or default (``UNDEFINED`` when it has none)."""
        with self._lock:
            return dict(self._values)

    def defined(self) -> dict[str, Any]:
        return {n: v for n, v in self._values.items() if v is not UNDEFINED}

    def snapshot(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The current values with ``overrides`` on top, validated, as one consistent copy.

        A trial works on this copy, never on the shared values: another thread calling
        ``set_parameters`` meanwhile cannot change a trial that is being prepared.
        """
        if overrides:
            self._check_declared(overrides)
            for name, value in overrides.items():
                plain_parameter(name, value)
        with self._lock:
            values = dict(self._values)
        if overrides:
            values.update(overrides)
        return values

    def bindings(self, values: Mapping[str, Any], graph: Mapping[Any, Any]) -> dict[str, Any]:
        """Graph key → value for the parameters ``graph`` uses; all must be defined."""
        names = [n for n in values if self.key(n) in graph]
        missing = [n for n in names if values[n] is UNDEFINED]
        if missing:
            listing = ", ".join(f"{n}=..." for n in missing)
            raise ParameterUndefinedError(
                f"Parameters are not defined. Use Experiment.set_parameters to initialize: {', '.join(missing)}. "
                f"Call ex.set_parameters({listing}) before compute(), or pass them on the command line "
                "(no trial was recorded).")
        return {self.key(n): values[n] for n in names}

    @staticmethod
    def recorded(values: Mapping[str, Any]) -> dict[str, Any]:
        """Plain-data copy of every defined parameter in ``values``, as stored with a trial."""
        return {n: plain_parameter(n, v) for n, v in values.items() if v is not UNDEFINED}

    @property
    def names(self) -> list[str]:
        return list(self._values)


class Parameter(Delayed):
    """A Delayed standing for a parameter; its value is bound when a trial starts."""

    __slots__ = ("_store", "_name")

    def __init__(self, store: ParameterStore, name: str) -> None:
        task = dask.delayed(_parameter_value, pure=True)(store, name, dask_key_name=store.key(name))
        super().__init__(task.key, task.dask)  # type: ignore[no-untyped-call]  # see mypy.ini: untyped_calls_exclude
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_name", name)

    def __repr__(self) -> str:
        """``Parameter(a: 1<class 'int'>)``, as the original showed a parameter and its value's type."""
        value = self._store._values.get(self._name, UNDEFINED)
        if value is UNDEFINED:
            return f"Parameter({self._name}: Undefined)"
        return f"Parameter({self._name}: {value!r}{type(value)})"

    def __reduce__(self) -> tuple[type[Delayed], tuple[Any, ...]]:  # a plain Delayed when shipped elsewhere
        return (Delayed, (self.key, self.dask))
