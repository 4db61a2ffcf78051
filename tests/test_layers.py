"""Core imports in one direction: the layer contract in pyproject.toml, checked by import-linter."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_layer_contract_is_kept():
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in sys.modules if m.startswith('daskperiment')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_backend_interface_imports_nothing_above_it():
    modules = _modules_after("import daskperiment.backends")
    assert "daskperiment.experiment" not in modules
    assert "daskperiment.plugins" not in modules
    assert "daskperiment.trial" not in modules



def test_contributing_shows_the_contracted_layers():
    """CONTRIBUTING.md's diagram names the layers of the contract, top to bottom."""
    block = re.search(r"^layers = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    assert block is not None
    layers = [[name.removeprefix("daskperiment.") for name in layer.split(" | ")]
              for layer in re.findall(r'"([^"]+)"', block.group(1))]
    diagram = re.search(r"## Core's layers.*?```text\n(.*?)```", (ROOT / "CONTRIBUTING.md").read_text(), re.S)
    assert diagram is not None
    shown = [line.split("  ")[0].split(" · ") for line in diagram.group(1).splitlines()
             if line and not line.startswith(" ")]
    assert shown == layers
