"""Plain-data encoding of metadata: parameters and results.

Metadata is stored as JSON so that reading history never runs code. Results
that are not plain data are encoded by :mod:`daskperiment.payloads`.
"""

from __future__ import annotations

import json
from typing import Any

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


def plain_parameter(name: str, value: Any) -> Any:
    """Validate and convert one parameter value to plain data, or raise a clear error."""
    if type(value) in _PLAIN_SCALARS:
        return value
    try:
        return json.loads(dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"Parameter {name!r} must be plain data (str, int, float, bool, None, or lists/dicts of "
            f"them) because it is stored in the history; got {type(value).__qualname__}. Pass a "
            "file name or a small value instead, and load big objects inside a step.") from exc
