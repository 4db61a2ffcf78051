"""The torch seeder: torch gets the trial seed even where nothing has imported it yet.

Registered through the ``daskperiment`` entry point ``seed_torch``. The core seeds torch
(``torch.manual_seed``, every device) only when ``torch`` is already in :data:`sys.modules`:
importing it just to seed it would cost every process a second, and most never use torch.
A step that imports torch in its body is then unseeded in a fresh process or on a fresh Dask
worker: the seeders run before the step, when torch is not imported yet, and torch draws
from a seed of its own whatever the trial seed. Installing this plugin declares that trials
use torch: before the seeders run, it imports torch when it is installed, and the core's
seeder then seeds it like any imported torch.

It also hashes torch tensors for the purity check (:func:`hash_value`): from their dtype,
shape and bytes, so the same values give the same hash in every process. (The core's
fallback, :func:`dask.base.tokenize`, has no rule for tensors and may call them
non-deterministic, which leaves a step returning them unchecked.)
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from typing import Any

from daskperiment import hookimpl
from daskperiment.plugins import get_plugin_host

__all__ = ["hash_value", "seed_random_state", "tensor_digest", "torch_installed"]


@functools.cache
def torch_installed() -> bool:
    """Whether ``torch`` can be imported (looked up once per process)."""
    return importlib.util.find_spec("torch") is not None


@hookimpl(tryfirst=True)
def seed_random_state(seed: int) -> None:
    """Import torch when it is installed and not imported yet; the core's seeder, which runs
    next, seeds it with ``seed``.

    ``tryfirst``: importing torch can draw from Python's :mod:`random`, which the core seeds
    right after, so a step's draws are the same whether this process imported torch just now
    or long ago.
    """
    if "torch" not in sys.modules and torch_installed():
        importlib.import_module("torch")


@hookimpl(tryfirst=True)
def hash_value(value: Any) -> str | None:
    """A deterministic hash of a tensor, or of a dict, list or tuple holding tensors among its
    items (a ``state_dict``, ``(weights, bias)``); ``None`` for anything else, which the other
    implementations and the core's fallback then hash.

    Only direct items are looked at to decide: deeper containers are hashed when their parent
    is, each item through every implementation (numpy arrays, plain data), and the whole
    value is left to the others when one item has no hash. ``tryfirst``: the core's fallback
    must not answer for a tensor first. Costs one dictionary look-up when torch is not imported.
    """
    tensor = getattr(sys.modules.get("torch"), "Tensor", None)  # None: torch not imported (or half-imported)
    if tensor is None:
        return None
    if isinstance(value, tensor):
        return tensor_digest(value)
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else ()
    if not any(isinstance(item, tensor) for item in items):
        return None
    return _container_digest(value, tensor)


def tensor_digest(tensor: Any) -> str | None:
    """BLAKE2 of a tensor's dtype, shape and bytes: the same values give the same digest on any
    device, whatever the memory layout (views, transposes, conjugate bits) and ``requires_grad``.
    A quantized tensor gives ``None`` (its bytes are not its values)."""
    import torch

    if tensor.is_quantized:
        return None
    dense = tensor.detach()
    if dense.layout != torch.strided:
        dense = dense.to_dense()
    dense = dense.resolve_conj().resolve_neg().to("cpu").contiguous().reshape(-1)
    digest = hashlib.blake2b(f"tensor|{dense.dtype}|{tuple(tensor.shape)}|".encode(), digest_size=16)
    digest.update(dense.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _container_digest(value: Any, tensor: type) -> str | None:
    """A dict (keys in order), list or tuple: its type and every key and item hashed through the
    plugin host, so an item of any type hashes as it would alone; ``None`` if one has no hash."""
    pairs = value.items() if isinstance(value, Mapping) else enumerate(value)
    digest = hashlib.blake2b(f"{type(value).__module__}.{type(value).__qualname__}|{len(value)}|".encode(),
                             digest_size=16)
    host = get_plugin_host()
    for key, item in pairs:
        parts = (host.hash_value(key), tensor_digest(item) if isinstance(item, tensor) else host.hash_value(item))
        if None in parts:
            return None
        digest.update(f"{parts[0]}:{parts[1]};".encode())
    return digest.hexdigest()
