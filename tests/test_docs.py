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
