"""Trial results and persisted step results as bytes: pickle only when nothing safer fits.

Reading a store must never run code that a writer planted, so values are encoded
in the safest form that brings them back exactly:

==============  ==============================================================
``json``        plain data (str, int, float, bool, None, lists, dicts with str keys)
``npy``         a numpy array whose dtype holds no Python objects (``np.load`` with
                ``allow_pickle=False``)
``arrow``       a pandas DataFrame (``arrow-series``: a Series) as Arrow IPC, when
                pyarrow (>= 14.0.1, without the PyExtensionType hole) is installed
                and the value comes back exactly
``pickle``      anything else: cloudpickle, **signed** with HMAC-SHA256
==============  ==============================================================

A trial record names its result's encoding (``result_encoding``); a persisted
result carries a short header (:data:`MAGIC`, the encoding, a newline) before
its body. A pickle body is the 32-byte HMAC of the pickle followed by the pickle;
the key is kept outside the store (:func:`pickle_key`): ``DASKPERIMENT_PICKLE_KEY``,
else a key file in the user's config directory, created on first use (0600). A
pickle whose signature does not verify — written with another key, unsigned, or
altered in the store — is refused before a byte of it is unpickled.

Dask workers that persist results need the same key: a ``LocalCluster`` inherits
the environment variable and the home directory of the process that starts it;
on other machines set ``DASKPERIMENT_PICKLE_KEY`` (or copy the key file).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import json
import logging
import os
import pathlib
import reprlib
import secrets
from typing import Any, NoReturn

import cloudpickle

from .errors import PayloadError, UntrustedPickleError
from .records import TrialOutcome
from .serialization import is_plain

__all__ = ["KEY_ENV", "MAGIC", "decode", "decode_result", "encode", "encode_result", "key_file", "pack", "pickle_key", "unpack"]

logger = logging.getLogger(__name__)

#: Environment variable holding the pickle signing key (any text; 64 hex digits recommended).
KEY_ENV = "DASKPERIMENT_PICKLE_KEY"
#: First bytes of a persisted payload: never the start of a pickle (those start with ``\x80``).
MAGIC = b"DPK1:"
_MAC_BYTES = 32
_UNNAMED = "__daskperiment_unnamed_series__"  # the column of a Series without a name
_ARROW_MIN_VERSION = (14, 0, 1)  # CVE-2023-47248: earlier pyarrow could run code while reading IPC
_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200


# ---- the signing key --------------------------------------------------------------------------
def key_file() -> pathlib.Path:
    """``$XDG_CONFIG_HOME/daskperiment/pickle.key`` (``~/.config/daskperiment/pickle.key``)."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return pathlib.Path(config) / "daskperiment" / "pickle.key"


def pickle_key() -> tuple[bytes, str]:
    """The signing key and where it came from (for messages)."""
    text = os.environ.get(KEY_ENV)
    if text:
        return text.strip().encode(), f"the environment variable {KEY_ENV}"
    path = key_file()
    return _read_or_create_key(str(path)), f"the key file {path}"


@functools.lru_cache(maxsize=8)
def _read_or_create_key(path: str) -> bytes:
    """Read the key file, or create it with a random key. Created under a temporary name and
    hard-linked into place, so two processes starting at once end up with the same key."""
    target = pathlib.Path(path)
    try:
        return _key_text(target)
    except FileNotFoundError:
        pass
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, target)
        logger.info("Created the pickle signing key %s (share it with everyone who shares your stores)", target)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _key_text(target)


def _key_text(path: pathlib.Path) -> bytes:
    key = path.read_text().strip().encode()
    if not key:
        raise UntrustedPickleError(f"The pickle key file {path} is empty: delete it to get a new key, or put "
                                   f"your team's key in it (or in {KEY_ENV}).")
    return key


def _mac(key: bytes, data: bytes | memoryview) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _sign(pickled: bytes) -> bytes:
    key, _ = pickle_key()
    return _mac(key, pickled) + pickled


def _verified(body: bytes, what: str) -> bytes:
    """The pickle inside a signed body, or :class:`UntrustedPickleError` saying why and what to do."""
    key, source = pickle_key()
    view = memoryview(body)
    if len(body) > _MAC_BYTES and hmac.compare_digest(_mac(key, view[_MAC_BYTES:]), bytes(view[:_MAC_BYTES])):
        return bytes(view[_MAC_BYTES:])
    _refuse(what, "its signature does not match this key (signed with another key, unsigned, or altered in "
            "the store)", source)


def _refuse(what: str, reason: str, source: str | None = None) -> NoReturn:
    if source is None:
        _, source = pickle_key()
    raise UntrustedPickleError(
        f"Refusing to unpickle {what}: {reason}. Unpickling runs code, so daskperiment loads only pickles "
        f"signed with your pickle key (from {source}). If you trust whoever wrote this store, use their key: "
        f"set {KEY_ENV} to the contents of their key file, or copy it to {key_file()}; everyone sharing a "
        "store shares one key.")


# ---- encodings ------------------------------------------------------------------------------------
def _arrow() -> Any:
    """pyarrow when installed and safe to read with, else ``None``."""
    try:
        import pyarrow
    except ImportError:
        return None
    version = tuple(int(part) for part in pyarrow.__version__.split(".")[:3] if part.isdigit())
    return pyarrow if version >= _ARROW_MIN_VERSION else None


def _same_pandas(a: Any, b: Any) -> bool:
    import pandas as pd

    check = pd.testing.assert_frame_equal if isinstance(a, pd.DataFrame) else pd.testing.assert_series_equal
    try:
        check(a, b, check_exact=True, check_index_type=True, check_names=True, check_freq=True, check_flags=True)
    except (AssertionError, TypeError, ValueError):
        return False
    return True


def _arrow_bytes(frame: Any) -> bytes:
    pa = _arrow()
    table = pa.Table.from_pandas(frame)  # a RangeIndex as metadata, other indexes as columns
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _arrow_frame(body: bytes) -> Any:
    pa = _arrow()
    if pa is None:
        raise PayloadError("This value was stored as Arrow IPC: install pyarrow>=14.0.1 to read it.")
    with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
        return reader.read_all().to_pandas()


def _series(frame: Any) -> Any:
    series = frame.iloc[:, 0]
    return series.rename(None) if series.name == _UNNAMED else series


def _try_arrow(value: Any) -> tuple[str, bytes] | None:
    """Arrow IPC of a DataFrame or Series when it comes back exactly, else ``None``."""
    import pandas as pd

    if _arrow() is None or type(value) not in (pd.DataFrame, pd.Series):
        return None
    series = type(value) is pd.Series
    try:
        body = _arrow_bytes(value.to_frame(_UNNAMED if value.name is None else value.name) if series else value)
        back = _arrow_frame(body)
    except Exception:  # noqa: BLE001 - any value Arrow cannot hold (mixed objects …) is pickled
        return None
    if series:
        back = _series(back)
    return ("arrow-series" if series else "arrow", body) if _same_pandas(value, back) else None


def encode(value: Any) -> tuple[str, bytes]:
    """``(encoding, body)``: the safest encoding that gives ``value`` back exactly."""
    if is_plain(value):
        return "json", json.dumps(value, separators=(",", ":")).encode()
    import numpy as np

    if type(value) is np.ndarray and not value.dtype.hasobject:
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return "npy", buffer.getvalue()
    arrow = _try_arrow(value)
    if arrow is not None:
        return arrow
    try:
        pickled = cloudpickle.dumps(value)
    except Exception as exc:
        raise TypeError(f"A value of type {type(value).__qualname__} cannot be pickled ({exc}): return plain data, "
                        "a numpy array, a pandas object or a picklable object.") from exc
    return "pickle", _sign(pickled)


def decode(encoding: str, body: bytes, what: str) -> Any:
    """The value of :func:`encode`'s output; a pickle only when its signature verifies."""
    if encoding == "json":
        return json.loads(body)
    if encoding == "npy":
        import numpy as np

        return np.load(io.BytesIO(body), allow_pickle=False)
    if encoding == "arrow":
        return _arrow_frame(body)
    if encoding == "arrow-series":
        return _series(_arrow_frame(body))
    if encoding == "pickle":
        return cloudpickle.loads(_verified(body, what))
    raise PayloadError(f"Cannot read {what}: unknown encoding {encoding!r} (written by a newer daskperiment?).")


# ---- self-describing payloads (persisted step results) ------------------------------------------------
def pack(value: Any) -> bytes:
    """``MAGIC + encoding + b"\\n" + body``: a persisted result that says how to read it."""
    encoding, body = encode(value)
    return b"".join((MAGIC, encoding.encode(), b"\n", body))


def unpack(data: bytes, what: str) -> Any:
    """The value :func:`pack` stored. Bytes without the header (a bare pickle) are refused."""
    data = bytes(data)
    if not data.startswith(MAGIC):
        _refuse(what, "it is a bare pickle, not signed (written before pickles were signed, or planted)")
    encoding, _, body = data[len(MAGIC):].partition(b"\n")
    return decode(encoding.decode("ascii", "replace"), body, what)


# ---- trial results -------------------------------------------------------------------------------------
def encode_result(value: Any) -> TrialOutcome:
    """Result fields of a trial record.

    Plain data is stored as the ``result`` itself (``result_encoding`` ``"json"``). Anything
    else is shown in the history by its bounded repr, and stored as bytes in ``result_pickle``
    (the field's name is older than the encodings) in ``result_encoding``.
    """
    if hasattr(value, "item") and getattr(value, "shape", None) == () and type(value).__module__ == "numpy":
        shown = value.item()  # a numpy scalar: shown and stored as the Python number
    else:
        shown = value
    result_type = str(type(value))
    if is_plain(shown):
        return {"result": shown, "result_pickle": None, "result_encoding": "json", "result_type": result_type}
    encoding, body = encode(value)
    return {"result": _repr.repr(value), "result_pickle": body, "result_encoding": encoding,
            "result_type": result_type}


def decode_result(record: dict[str, Any]) -> Any:
    """The exact result of a trial record. Its bytes are read only when the record's own
    ``result_encoding`` says the result is in them; a record from before encodings were
    recorded holds a bare pickle, which is unsigned and therefore refused."""
    trial = f"the result of trial {record.get('trial_id')}"
    encoding = record.get("result_encoding")
    body = record.get("result_pickle")
    if encoding in (None, "json") and (encoding == "json" or body is None):
        return record.get("result")
    if body is None:
        raise PayloadError(f"Cannot read {trial}: its record says it is stored as {encoding!r} but holds no bytes.")
    if encoding is None:
        _refuse(trial, "its record holds a bare pickle, not signed (written before pickles were signed, or "
                "planted)")
    return decode(encoding, bytes(body), trial)
