"""The essential core plugin: fallbacks every installation needs.

Registered like any other plugin (entry point ``core``) but it cannot be blocked.
Each implementation here is ``trylast`` where a plugin may want to win.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import pickle
import platform
import random
import sys
from typing import Any, Callable, Mapping

from .hookspecs import hookimpl


_PLAIN_ATOMS = (int, float, str, bytes, bool, type(None))
_CONTAINERS = frozenset({tuple, list, dict})
_NOT_PLAIN = object()


def _canonical(value: Any, depth: int = 0) -> Any:
    """Plain data with dicts as key-sorted item tuples, or ``_NOT_PLAIN``.

    Equal dicts built in a different order (say, from iterating a set of strings,
    whose order depends on ``PYTHONHASHSEED``) must hash alike in every process.
    Runs twice per step call (inputs, output), so atoms inside containers are taken
    without a recursive call.
    """
    if isinstance(value, _PLAIN_ATOMS):
        return value
    kind = type(value)
    if depth > 3 or kind not in _CONTAINERS:
        return _NOT_PLAIN
    if kind is dict:
        if not value:
            return (dict, ())
        items = []
        for key, item in value.items():
            if not isinstance(item, _PLAIN_ATOMS):
                item = _canonical(item, depth + 1)
                if item is _NOT_PLAIN:
                    return _NOT_PLAIN
            if not isinstance(key, _PLAIN_ATOMS):
                return _NOT_PLAIN
            items.append((key, item))
        try:
            items.sort(key=_dict_order)
        except TypeError:
            return _NOT_PLAIN
        return (dict, tuple(items))
    out = []
    for item in value:
        if not isinstance(item, _PLAIN_ATOMS):
            item = _canonical(item, depth + 1)
            if item is _NOT_PLAIN:
                return _NOT_PLAIN
        out.append(item)
    return out if kind is list else tuple(out)


def _dict_order(pair: tuple[Any, Any]) -> tuple[str, Any]:
    return (type(pair[0]).__name__, pair[0])


@hookimpl(trylast=True)
def hash_value(value: Any) -> str | None:
    """Deterministic across processes for numpy, pandas, dask collections and plain data.

    Plain data (scalars, and tuples/lists/dicts of them) takes a fast path: a BLAKE2
    digest of the pickle of its canonical form; everything else goes through
    :func:`dask.base.tokenize`. Objects dask cannot hash deterministically give
    ``None``: their step is not purity-checked rather than warned about every trial.
    """
    canonical = _canonical(value)
    if canonical is not _NOT_PLAIN:
        return hashlib.blake2b(pickle.dumps(canonical, protocol=4), digest_size=16).hexdigest()
    from dask.base import tokenize
    from dask.tokenize import TokenizationError

    try:
        return tokenize(value, ensure_deterministic=True)
    except TokenizationError:
        return None


def _seed_torch(module: Any, seed: int) -> None:
    module.manual_seed(seed)  # every device, CUDA included


def _seed_tensorflow(module: Any, seed: int) -> None:
    module.random.set_seed(seed)


def _seed_cupy(module: Any, seed: int) -> None:
    module.random.seed(seed)


#: Libraries seeded only when the process has already imported them: importing
#: torch or tensorflow just to seed it would cost seconds on every worker. A step
#: using one imports it at module level, so it is imported (unpickling the step
#: imports it on a worker) before the seeders run.
OPTIONAL_SEEDERS: dict[str, Callable[[Any, int], None]] = {
    "torch": _seed_torch, "tensorflow": _seed_tensorflow, "cupy": _seed_cupy,
}


@hookimpl
def seed_random_state(seed: int) -> None:
    """Seed ``random``, numpy's legacy global state, and torch/tensorflow/cupy when imported.

    These live in core rather than in plugins because they need no dependency, cost a
    dictionary lookup when the library is absent, and must run on every Dask worker.
    """
    random.seed(seed)
    seed32 = seed % 2**32
    _numpy_random().seed(seed32)
    modules = sys.modules
    for name, seeder in OPTIONAL_SEEDERS.items():
        module = modules.get(name)
        if module is not None:
            seeder(module, seed32)


@functools.cache
def _numpy_random() -> Any:
    """``numpy.random``, imported on the first seeding (runs before every step: no import statement there)."""
    import numpy.random

    return numpy.random


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry in some containers
        return None


@hookimpl
def collect_environment() -> Mapping[str, Any]:
    """Platform/device and Python interpreter facts: stdlib only, so they live in core."""
    uname = platform.uname()
    device = {
        "system": uname.system, "release": uname.release, "version": uname.version,
        "machine": uname.machine, "processor": uname.processor, "node": uname.node,
        "user": _user(), "cpu_count": os.cpu_count(),
    }
    python = {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "virtual_env": sys.prefix != sys.base_prefix,
        "conda_prefix": os.environ.get("CONDA_PREFIX"),
    }
    return {"device": device, "python": python}
