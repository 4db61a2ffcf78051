"""docs/writing_backends.md is the example plugin's real code, and its usage example runs.

The plugin itself (examples/plugins/daskperiment-jsonl) is installed by requirements/dev.txt
and its own tests, the whole backend conformance suite, run with the rest of the suite.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "writing_backends.md").read_text()
MARKED_BLOCK = re.compile(r"<!-- (file|part of|run)(?:: (\S+))? -->\n```\w*\n(.*?)```", re.S)


def _blocks(kind: str) -> list[tuple[str, str]]:
    return [(path, code) for found, path, code in MARKED_BLOCK.findall(GUIDE) if found == kind]


def _code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_whole_files_are_shown_as_they_are():
    shown = _blocks("file")
    assert len(shown) == 3, [path for path, _ in shown]
    for path, code in shown:
        assert code == (ROOT / path).read_text(), f"docs/writing_backends.md differs from {path}"


def test_the_backend_is_shown_whole_in_order():
    """The guide's parts of backend.py, one after the other, are that file (blank lines aside)."""
    parts = _blocks("part of")
    assert {path for path, _ in parts} == {"examples/plugins/daskperiment-jsonl/src/daskperiment_jsonl/backend.py"}
    shown = [line for _, code in parts for line in _code_lines(code)]
    assert shown == _code_lines((ROOT / parts[0][0]).read_text())


def test_usage_example_runs_on_the_installed_plugin(tmp_path):
    (_, code), = _blocks("run")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Trial ID" in result.stdout
    trials = (tmp_path / "runs" / "demo" / "trials.jsonl").read_text().splitlines()
    assert [json.loads(line)["parameters"] for line in trials] == [{"a": 3}]
