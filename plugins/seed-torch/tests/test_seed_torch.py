"""The torch seeder: registered, quiet without torch, and the trial seed decides a lazily imported
torch's draws in a fresh process (where the core's seeder cannot see torch yet)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import daskperiment_seed_torch as plugin
from daskperiment.plugins import list_plugins

SCRIPT = textwrap.dedent("""
    import json, sys
    import daskperiment

    ex = daskperiment.Experiment("seed_torch", seed=None)

    @ex.result
    def draw():
        import torch  # imported by the step, as on a fresh Dask worker

        return torch.rand(3).tolist()

    print(json.dumps(draw().compute(seed=int(sys.argv[1]))))
""")


def test_registered_under_its_entry_point():
    rows = {row["name"]: row for row in list_plugins()}
    assert rows["seed_torch"]["distribution"] == "daskperiment-seed-torch"
    assert "seed_random_state" in rows["seed_torch"]["hooks"]


def test_does_nothing_without_torch(monkeypatch):
    monkeypatch.setattr(plugin, "torch_installed", lambda: False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert plugin.seed_random_state(7) is None
    assert "torch" not in sys.modules


def test_runs_before_the_core_seeder():
    """Importing torch must not move Python's random state after the core has seeded it."""
    from daskperiment.plugins import get_plugin_manager

    impls = get_plugin_manager().hook.seed_random_state.get_hookimpls()
    order = [impl.plugin_name for impl in reversed(impls)]  # pluggy calls the last registered first
    assert order.index("seed_torch") < order.index("core")


def _fresh_process_draws(tmp_path, seed: int, **env: str) -> list[float]:
    (tmp_path / "draw.py").write_text(SCRIPT)
    out = subprocess.run([sys.executable, "draw.py", str(seed)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_trial_seed_decides_a_lazily_imported_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="TORCH NOT INSTALLED: the seeder's effect on torch is not "
                                               "tested (pip install torch, the CPU wheel is enough)")
    torch.manual_seed(5)
    expected = torch.rand(3).tolist()
    assert _fresh_process_draws(tmp_path, 5) == expected
    assert _fresh_process_draws(tmp_path, 6) != expected
    # what the plugin fixes: without it the first trial of a fresh process ignores the trial seed
    assert _fresh_process_draws(tmp_path, 5, DASKPERIMENT_DISABLE_PLUGINS="seed_torch") != expected
