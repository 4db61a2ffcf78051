"""One more attempt for a write whose connection dropped.

pymongo repeats a failed write by itself only on replica sets and sharded clusters.
Against a standalone server every pooled connection dies when the server restarts, so
the first write afterwards would fail although the server is back. A second attempt
selects the server afresh (waiting up to ``serverSelectionTimeoutMS``) and succeeds.

Every write of the backend is safe to repeat: upserts by ``_id``, deletes, and inserts
whose ``_id`` is fixed before the first attempt (a duplicate key on the repeat means the
first attempt was stored; a trial start also carries a token that tells whose it is).

A call that *timed out*, or that pymongo cancelled because its monitor found the server
unresponsive, is not repeated: the server is frozen or overloaded, and a second wait would
only add a server-selection timeout before the user hears of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("daskperiment.mongo")

T = TypeVar("T")
DUPLICATE_KEY = 11000


def retry(first: Callable[[], T], again: Callable[[], T] | None = None) -> T:
    """``first()``; after a dropped connection (not a server that stays down), ``again()``."""
    import pymongo.errors
    from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError

    unresponsive: tuple[type[Exception], ...] = (ServerSelectionTimeoutError, NetworkTimeout)
    cancelled = getattr(pymongo.errors, "_OperationCancelled", None)  # private: absent from some pymongo versions
    if isinstance(cancelled, type):
        unresponsive += (cancelled,)
    try:
        return first()
    except AutoReconnect as exc:
        if isinstance(exc, unresponsive):
            raise
        logger.warning("MongoDB connection lost (%s); trying once more", exc)
    return (again or first)()


def insert(collection: Any, documents: list[dict[str, Any]]) -> None:
    """Insert ``documents`` (in any order); a repeat skips those the first attempt stored."""
    from bson import ObjectId

    for document in documents:
        document.setdefault("_id", ObjectId())
    retry(lambda: _insert(collection, documents, repeat=False), lambda: _insert(collection, documents, repeat=True))


def _insert(collection: Any, documents: list[dict[str, Any]], *, repeat: bool) -> None:
    """A single document goes through ``insert_one``, which checks the 16 MB limit on the
    client; some servers accept oversized documents sent by ``insert_many``."""
    from pymongo.errors import BulkWriteError, DuplicateKeyError

    try:
        if len(documents) == 1:
            collection.insert_one(documents[0])
        else:
            collection.insert_many(documents, ordered=False)
    except DuplicateKeyError:
        if not repeat:
            raise
    except BulkWriteError as exc:
        details = exc.details
        if (not repeat or details.get("writeConcernErrors")
                or any(e["code"] != DUPLICATE_KEY for e in details["writeErrors"])):
            raise
