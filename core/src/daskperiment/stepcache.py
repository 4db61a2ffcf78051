"""The step cache: skip a step whose code and inputs match a stored run.

An entry's digest covers the step's source code, the hash of its inputs (the same
hash the purity check uses) and an optional ``cache_key``; its value is the step's
encoded output, stored once in the experiment's backend however many trials hit it,
so processes and Dask workers sharing the backend share the cache.

What the digest does not see: code the step calls (a helper function, a library),
files it reads by name, the environment. Change ``cache_key`` (or pass a callable
returning, say, a helper's version or a file's modification time) to invalidate by
hand, or ``ex.clear_cache()``.

Outputs are encoded like persisted results (:mod:`daskperiment.payloads`: JSON, ``.npy``,
Arrow, or a pickle signed with the user's key); an entry that does not verify is not used:
the step runs and its output replaces the entry.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable

from .backends import Backend

__all__ = ["CacheKey", "cache_digest", "evict", "parse_size"]

logger = logging.getLogger("daskperiment")

#: ``cache_key=``: a fixed string, or a callable giving one each time the step runs.
CacheKey = str | Callable[[], str] | None

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(size: int | str | None) -> int | None:
    """``2_000_000``, ``"2GB"``, ``"512 MiB"`` → bytes; ``None`` → no bound."""
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(size))
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"cache_limit must be a number of bytes or a size such as '2GB' or '512MiB', "
                         f"got {size!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def cache_digest(step: str, code: str, input_hash: str, key: CacheKey) -> str:
    """The entry of one step call (alphanumeric, so every backend can use it as a name)."""
    extra = key() if callable(key) else (key or "")
    text = "\0".join((step, code, input_hash, str(extra)))
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def evict(backend: Backend, limit: int) -> int:
    """Delete least-recently-used entries until the cache holds at most ``limit`` bytes;
    returns how many bytes were freed."""
    entries = sorted(backend.cached_entries(), key=lambda entry: entry.last_used)
    total = sum(entry.size for entry in entries)
    doomed, freed = [], 0
    for entry in entries:
        if total - freed <= limit:
            break
        doomed.append(entry.digest)
        freed += entry.size
    if doomed:
        backend.delete_cached(doomed)
        logger.info("Step cache over %d bytes: evicted %d entries (%d bytes)", limit, len(doomed), freed)
    return freed
