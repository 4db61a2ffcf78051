"""Documentation examples are real code."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_conformance_example_is_the_local_backend_test():
    doc = (ROOT / "docs" / "testing_plugins.md").read_text()
    real = (ROOT / "plugins" / "local" / "tests" / "test_conformance.py").read_text()
    body = real.split('"""', 2)[2].strip()
    assert body in doc


def test_readme_first_code_block_has_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[1] in (ROOT / ".ci" / "run").read_text()


def test_sweeps_page_example_runs(tmp_path):
    """docs/sweeps.md's first Python block, run as a script: a sweep on a LocalCluster, a sampler,
    a trial re-run alone."""
    import subprocess
    import sys

    page = (ROOT / "docs" / "sweeps.md").read_text()
    blocks = re.findall(r"```python[^\n]*\n(.*?)```", page, re.S)
    example = next(block for block in blocks if "LocalCluster" in block)
    script = tmp_path / "sweep_example.py"
    script.write_text(example)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "6 trials: 4 succeeded, 2 failed (trial 1: ValueError(depth must be positive))" in done.stderr
    assert "4 trials: 4 succeeded, 0 failed" in done.stderr


def test_every_record_field_is_explained_in_the_concepts_page():
    from daskperiment.records import TRIAL_FIELDS

    page = (ROOT / "docs" / "concepts.md").read_text()
    missing = [name for name in TRIAL_FIELDS if f"`{name}`" not in page]
    assert not missing, f"add these record fields to the Record table of docs/concepts.md: {missing}"
