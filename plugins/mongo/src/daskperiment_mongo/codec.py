"""Plain data ↔ BSON that any MongoDB-compatible server stores unchanged.

Trial metadata (parameters, results, code and environment documents) is JSON-able
data and is stored as ordinary BSON, never pickled, so other tools can query it.
Three things JSON allows need care to survive every server:

* field names containing ``.`` or ``$`` (package names such as ``zope.interface``
  in an environment document) or NUL: servers before MongoDB 5.0 reject them, so
  ``%``, ``.``, ``$`` and NUL in keys are percent-escaped (``%2E`` …);
* NaN and ±infinity (a diverged loss): stored as ``{"%float": "nan"}``, since some
  MongoDB-compatible servers keep documents as JSON, which has no NaN;
* integers outside int64 (BSON's widest integer): stored as ``{"%int": "<digits>"}``.

The markers cannot collide with user keys because a ``%`` in a user key is always
escaped to ``%25``. Keys needing none of this (the common case) are unchanged.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import unquote

_ESCAPES = (("%", "%25"), (".", "%2E"), ("$", "%24"), ("\0", "%00"))
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
FLOAT_MARKER, INT_MARKER = "%float", "%int"


def _escape_key(key: str) -> str:
    if "%" in key or "." in key or "$" in key or "\0" in key:
        for raw, escaped in _ESCAPES:
            key = key.replace(raw, escaped)
    return key


def encode(value: Any) -> Any:
    """``value`` (plain data) as BSON-safe plain data; see the module docstring."""
    kind = type(value)
    if kind is dict:
        return {_escape_key(k): encode(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [encode(v) for v in value]
    if kind is float and not math.isfinite(value):
        return {FLOAT_MARKER: repr(value)}
    if kind is int and not _INT64_MIN <= value <= _INT64_MAX:
        return {INT_MARKER: str(value)}
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`."""
    if type(value) is dict:
        if len(value) == 1:
            marker, text = next(iter(value.items()))
            if marker == FLOAT_MARKER:
                return float(text)
            if marker == INT_MARKER:
                return int(text)
        return {(unquote(k) if "%" in k else k): decode(v) for k, v in value.items()}
    if type(value) is list:
        return [decode(v) for v in value]
    return value
