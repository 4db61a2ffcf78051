"""Plain-data encoding of metadata: parameters and results.

Metadata is stored as JSON so that reading history never runs code. Results
that are not plain data are encoded by :mod:`daskperiment.payloads`. Parameter
values of common non-JSON types (datetimes, tuples, numpy scalars …) are stored
as tagged JSON objects and decoded exactly when read back.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import logging
import pathlib
import sys
from typing import Any


from .errors import InvalidArgumentError

logger = logging.getLogger("daskperiment")

_PLAIN_SCALARS = (str, int, float, bool, type(None))


def _to_plain(value: Any) -> Any:
    """numpy scalars become Python scalars; anything else is rejected."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        return item()
    raise TypeError(type(value).__qualname__)


def dumps(value: Any) -> str:
    """JSON text of plain data (numpy scalars allowed; tuples become lists)."""
    return json.dumps(value, default=_to_plain, separators=(",", ":"))


def loads(text: str | bytes | None) -> Any:
    return None if text is None else json.loads(text)


def is_plain(value: Any) -> bool:
    """True when JSON round-trips ``value`` exactly (so no pickle is needed)."""
    if isinstance(value, _PLAIN_SCALARS):
        return True
    if type(value) is list:
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    return False


# ---- typed parameter values -------------------------------------------------------------------
#
# Parameter values are stored as JSON that every backend keeps as it is. Values JSON cannot
# represent exactly (a tuple, a datetime, a dict with int keys ...) are written as a tagged
# object, ``{"$type": <tag>, ...}``, and turned back into the same value when history or
# parameters are read. Decoding only calls constructors of known types: it never imports a
# module and never unpickles, so a shared store cannot make a reader run code.

TYPE_KEY = "$type"
SUPPORTED_TYPES = ("str, int, float, bool, None, lists, tuples, sets, dicts (any encodable keys), datetime, "
                   "date, time, timedelta, pandas Timestamp/Timedelta, numpy scalars, Decimal, pathlib paths "
                   "and Enum members")


class _Unsupported(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__(type(value).__qualname__)
        self.value = value


def _tagged(tag: str, **fields: Any) -> dict[str, Any]:
    return {TYPE_KEY: tag, **fields}


def _encode_datetime(value: datetime.datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {"value": value.isoformat()}
    key = getattr(value.tzinfo, "key", None)  # zoneinfo.ZoneInfo: keep the zone, not only its offset
    if isinstance(key, str):
        fields["tz"] = key
    return _tagged("datetime", **fields)


def _decode_datetime(fields: dict[str, Any]) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(fields["value"])
    if fields.get("tz"):
        import zoneinfo

        value = value.astimezone(zoneinfo.ZoneInfo(fields["tz"]))
    return value


def _encode_timestamp(value: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"value": value.isoformat()}
    if value.tz is not None:
        fields["tz"] = str(value.tz)
    return _tagged("pandas.Timestamp", **fields)


def _decode_timestamp(fields: dict[str, Any]) -> Any:
    import pandas as pd

    value = pd.Timestamp(fields["value"])
    return value.tz_convert(fields["tz"]) if fields.get("tz") else value


def _numpy_scalar(value: Any) -> dict[str, Any] | None:
    dtype = getattr(value, "dtype", None)
    if type(value).__module__ != "numpy" or dtype is None or getattr(value, "shape", None) != ():
        return None
    if dtype.kind in "biuf":
        return _tagged("numpy", dtype=dtype.str, value=value.item())
    if dtype.kind == "c":
        return _tagged("numpy", dtype=dtype.str, value=[value.real.item(), value.imag.item()])
    return None


def _decode_numpy(fields: dict[str, Any]) -> Any:
    import numpy as np

    dtype = np.dtype(fields["dtype"])
    value = fields["value"]
    if dtype.kind == "c":
        value = complex(*value)
    return dtype.type(value)


_PATH_TYPES = {cls.__name__: cls for cls in (pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath,
                                             pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath)}


def _decode_path(fields: dict[str, Any]) -> pathlib.PurePath:
    cls = _PATH_TYPES.get(fields.get("class", ""), pathlib.PurePath)
    try:
        return cls(fields["value"])
    except NotImplementedError:  # a WindowsPath read on POSIX (or the reverse): keep the flavour
        pure = pathlib.PureWindowsPath if "Windows" in cls.__name__ else pathlib.PurePosixPath
        return pure(fields["value"])


def _decode_enum(fields: dict[str, Any]) -> Any:
    """The member when its class is importable *already* (never imported for this), else its text."""
    module, _, qualname = fields["class"].partition(":")
    owner: Any = sys.modules.get(module)
    for part in qualname.split("."):
        owner = getattr(owner, part, None)
    if isinstance(owner, type) and issubclass(owner, enum.Enum) and fields["name"] in owner.__members__:
        return owner[fields["name"]]
    return f"{qualname}.{fields['name']}"


def _items(values: Any) -> list[Any]:
    return [encode_value(v) for v in values]


def _set_items(values: Any) -> list[Any]:
    """Set members in a stable order (sorted by their JSON text) so equal sets store equal JSON."""
    encoded = _items(values)
    return [v for _, v in sorted(((json.dumps(v, sort_keys=True), v) for v in encoded), key=lambda p: p[0])]


def encode_value(value: Any) -> Any:
    """``value`` as JSON-able data: plain values as they are, others as ``{"$type": ...}``.

    :raises _Unsupported: for a value of a type not in :data:`SUPPORTED_TYPES`.
    """
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if kind is list:
        return _items(value)
    if kind is dict:
        if all(type(k) is str for k in value) and TYPE_KEY not in value:
            return {k: encode_value(v) for k, v in value.items()}
        return _tagged("dict", items=[[encode_value(k), encode_value(v)] for k, v in value.items()])
    if kind is tuple:
        return _tagged("tuple", items=_items(value))
    if kind in (set, frozenset):
        return _tagged(kind.__name__, items=_set_items(value))
    if isinstance(value, enum.Enum):
        return _tagged("enum", **{"class": f"{kind.__module__}:{kind.__qualname__}", "name": value.name})
    module = kind.__module__
    if module.startswith("pandas"):
        if kind.__name__ == "Timestamp":
            return _encode_timestamp(value)
        if kind.__name__ == "Timedelta":
            return _tagged("pandas.Timedelta", value=int(value.value))
    if module == "numpy":
        tagged = _numpy_scalar(value)
        if tagged is not None:
            return tagged
    if kind is datetime.datetime:
        return _encode_datetime(value)
    if kind is datetime.date:
        return _tagged("date", value=value.isoformat())
    if kind is datetime.time:
        return _tagged("time", value=value.isoformat())
    if kind is datetime.timedelta:
        return _tagged("timedelta", value=[value.days, value.seconds, value.microseconds])
    if kind is decimal.Decimal:
        return _tagged("decimal", value=str(value))
    if isinstance(value, pathlib.PurePath):
        return _tagged("path", value=str(value), **{"class": kind.__name__})
    raise _Unsupported(value)


def _decode_timedelta(fields: dict[str, Any]) -> datetime.timedelta:
    days, seconds, microseconds = fields["value"]
    return datetime.timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _decode_pandas_timedelta(fields: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.Timedelta(fields["value"], unit="ns")


_DECODERS: dict[str, Any] = {
    "dict": lambda f: {decode_value(k): decode_value(v) for k, v in f["items"]},
    "tuple": lambda f: tuple(decode_value(v) for v in f["items"]),
    "set": lambda f: {decode_value(v) for v in f["items"]},
    "frozenset": lambda f: frozenset(decode_value(v) for v in f["items"]),
    "enum": _decode_enum,
    "pandas.Timestamp": _decode_timestamp,
    "pandas.Timedelta": _decode_pandas_timedelta,
    "numpy": _decode_numpy,
    "datetime": _decode_datetime,
    "date": lambda f: datetime.date.fromisoformat(f["value"]),
    "time": lambda f: datetime.time.fromisoformat(f["value"]),
    "timedelta": _decode_timedelta,
    "decimal": lambda f: decimal.Decimal(f["value"]),
    "path": _decode_path,
}


def decode_value(value: Any) -> Any:
    """The value :func:`encode_value` was given (an unknown ``$type`` is returned as stored)."""
    kind = type(value)
    if kind is list:
        return [decode_value(v) for v in value]
    if kind is dict:
        decoder = _DECODERS.get(value.get(TYPE_KEY)) if TYPE_KEY in value else None
        if decoder is None:
            return {k: decode_value(v) for k, v in value.items()}
        try:
            return decoder(value)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            logger.warning("Stored value %.200r could not be decoded (%s): shown as stored", value, exc)
            return value
    return value


def decode_parameters(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """A trial's stored parameters as the values it ran with."""
    if not parameters:
        return {}
    return {name: decode_value(value) for name, value in parameters.items()}


def plain_parameter(name: str, value: Any) -> Any:
    """Validate one parameter value and return how it is stored, or raise a clear error."""
    if type(value) in _PLAIN_SCALARS:
        return value
    try:
        return encode_value(value)
    except _Unsupported as exc:
        raise InvalidArgumentError(
            f"Parameter {name!r} has a value of type {type(exc.value).__qualname__}, which cannot be stored "
            f"in the history as plain data (never pickled). Supported: {SUPPORTED_TYPES}. Pass a file name "
            "or a small value instead, and load big objects inside a step.") from None
