"""The torch seeder's ``hash_value``: tensors (and containers of them) hash from their values,
the same in every process, so the purity check covers steps that return them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import daskperiment
import daskperiment_seed_torch as plugin
from daskperiment.plugins import get_plugin_host

CHANGED = "Experiment step result is changed with the same input"

DIGESTS = textwrap.dedent("""
    import json, torch
    from daskperiment.plugins import get_plugin_host

    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 2)
    host = get_plugin_host()
    print(json.dumps([host.hash_value(torch.arange(6.0).reshape(2, 3)), host.hash_value(layer.state_dict()),
                      host.hash_value([layer.weight, 3, "bias"])]))
""")


def torch_or_skip():
    return pytest.importorskip("torch", reason="TORCH NOT INSTALLED: the tensor hashes are not tested "
                                               "(pip install torch, the CPU wheel is enough)")


def test_without_torch_imported_it_answers_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    for value in (np.ones(3), [1, 2], {"a": 1}, "text"):
        assert plugin.hash_value(value) is None


def test_a_module_named_torch_without_tensors_is_no_torch(monkeypatch):
    """torch half-imported, or a stand-in under its name (tests of seeders put one there)."""
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    assert plugin.hash_value([1, 2]) is None


def test_other_values_are_left_to_the_core():
    torch_or_skip()
    for value in (np.ones(3), [1, 2], {"a": np.zeros(2)}, ([1], [2]), "text"):
        assert plugin.hash_value(value) is None
    assert get_plugin_host().hash_value([1, 2]) is not None  # the core's answer


def test_a_tensor_hashes_from_dtype_shape_and_values():
    torch = torch_or_skip()
    base = torch.arange(6.0).reshape(2, 3)
    digest = plugin.tensor_digest(base)
    assert get_plugin_host().hash_value(base) == digest
    # the same values, however they are held
    assert plugin.tensor_digest(base.clone()) == digest
    assert plugin.tensor_digest(base.t().contiguous().t()) == digest  # non-contiguous view
    assert plugin.tensor_digest(base.clone().requires_grad_()) == digest
    assert plugin.tensor_digest(base.to_sparse()) == digest
    assert plugin.tensor_digest(torch.nn.Parameter(base.clone())) == digest
    # other values, dtype or shape
    others = [base + 1, base.double(), base.reshape(3, 2), base.reshape(6), base.to(torch.bfloat16),
              torch.zeros(0), torch.tensor(True)]
    digests = {plugin.tensor_digest(t) for t in others}
    assert len(digests) == len(others) and digest not in digests
    assert plugin.tensor_digest(torch.quantize_per_tensor(base, 0.1, 0, torch.quint8)) is None


def test_containers_of_tensors_hash_item_by_item():
    torch = torch_or_skip()
    weights = {"w": torch.ones(2, 2), "b": torch.zeros(2)}
    digest = plugin.hash_value(weights)
    assert digest is not None and plugin.hash_value({"w": torch.ones(2, 2), "b": torch.zeros(2)}) == digest
    assert plugin.hash_value({"w": torch.ones(2, 2), "b": torch.ones(2)}) != digest
    assert plugin.hash_value({"b": torch.zeros(2), "w": torch.ones(2, 2)}) != digest  # key order is the value's
    assert plugin.hash_value((torch.ones(2), torch.zeros(2))) != plugin.hash_value([torch.ones(2), torch.zeros(2)])
    assert plugin.hash_value([torch.ones(2), np.arange(3)]) is not None  # numpy items hash as they would alone
    assert plugin.hash_value([torch.ones(2), object()]) is None  # an item with no hash: the whole has none


def test_the_same_values_hash_the_same_in_every_process(tmp_path):
    torch_or_skip()
    (tmp_path / "digests.py").write_text(DIGESTS)
    runs = [subprocess.run([sys.executable, "digests.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), [run.stderr for run in runs]
    first, second = (json.loads(run.stdout) for run in runs)
    assert first == second and None not in first


def test_the_purity_check_covers_a_step_returning_a_tensor(caplog):
    torch_or_skip()
    ex = daskperiment.Experiment("torch_purity")
    n = ex.parameter("n")

    @ex.result
    def noise(n):
        import torch

        return torch.rand(n)

    ex.set_parameters(n=3)
    first = noise(n).compute(seed=1)
    assert noise(n).compute(seed=1).equal(first)
    changed = [r for r in caplog.records if r.levelno == logging.WARNING and CHANGED in r.getMessage()]
    assert not changed  # the same seed, the same tensor: the same hash
    noise(n).compute(seed=2)  # the same input, other values: the check sees it
    assert [r for r in caplog.records if r.levelno == logging.WARNING and CHANGED in r.getMessage()]
