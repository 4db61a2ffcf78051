"""pymongo exceptions → daskperiment errors that name the backend, the cause and the fix."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from daskperiment.errors import BackendError, BackendUnavailableError, DaskperimentError

if TYPE_CHECKING:
    from .backend import MongoBackend

P = ParamSpec("P")
T = TypeVar("T")

#: Server error codes meaning "these credentials are not accepted".
_AUTH_CODES = {13, 18}  # Unauthorized, AuthenticationFailed


def _cause(exc: BaseException) -> str:
    """The useful part of a pymongo message (without timeout settings and topology dumps)."""
    text = str(exc)
    for tail in (" (configured timeouts", ", Timeout: ", ", full error: "):
        text = text.split(tail)[0]
    return text


def translate(backend: MongoBackend, action: str, exc: Exception) -> DaskperimentError | None:
    """The daskperiment error for ``exc``, or ``None`` when it is not a pymongo/BSON error."""
    from bson.errors import BSONError, InvalidDocument
    from pymongo import errors

    where = f"{backend!r} could not {action}"
    if isinstance(exc, (errors.ConnectionFailure, errors.CursorNotFound)):
        timeout = backend.server_selection_timeout
        waited = "" if timeout is None or not isinstance(exc, errors.ServerSelectionTimeoutError) else (
            f" It waited {timeout:g} s for the server (serverSelectionTimeoutMS in the URI sets how long).")
        return BackendUnavailableError(
            f"{where}: the MongoDB server is unreachable or the connection was lost ({type(exc).__name__}: "
            f"{_cause(exc)}). Fix: start the server or check the host, port and network, then run again; "
            f"what was stored before is intact and the backend reconnects by itself.{waited}")
    if isinstance(exc, errors.OperationFailure) and exc.code in _AUTH_CODES:
        return BackendUnavailableError(
            f"{where}: the server refused the credentials ({_cause(exc)}). Fix: check the user name, "
            "password and authSource in the URI, and that the user may read and write this database.")
    if isinstance(exc, errors.DocumentTooLarge):
        return BackendError(
            f"{where}: a document exceeds MongoDB's 16 MB limit ({_cause(exc)}). Fix: return a smaller "
            "result (large objects belong in an @ex.persist step, which is stored in chunks).")
    if isinstance(exc, InvalidDocument):
        return BackendError(f"{where}: a value cannot be stored as BSON ({_cause(exc)}); store plain data.")
    if isinstance(exc, (errors.PyMongoError, BSONError)):
        return BackendError(f"{where}: {type(exc).__name__}: {_cause(exc)}")
    return None


def guarded(action: str) -> Callable[[Callable[Concatenate[MongoBackend, P], T]],
                                    Callable[Concatenate[MongoBackend, P], T]]:
    """Decorate a backend method: pymongo errors become daskperiment errors about ``action``."""
    def decorate(method: Callable[Concatenate[MongoBackend, P], T]) -> Callable[Concatenate[MongoBackend, P], T]:
        @functools.wraps(method)
        def wrapper(self: MongoBackend, /, *args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return method(self, *args, **kwargs)
            except DaskperimentError:
                raise
            except Exception as exc:
                translated = translate(self, action, exc)
                if translated is None:
                    raise
                raise translated from exc
        return wrapper
    return decorate
