"""Importing daskperiment has no side effects."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_import_has_no_side_effects(tmp_path):
    code = textwrap.dedent("""
        import logging, os, sys
        before = set(os.listdir('.'))
        import daskperiment
        from daskperiment import plugins, environment
        assert set(os.listdir('.')) == before, 'files created'
        assert logging.getLogger().handlers == [], 'root handlers added'
        assert logging.getLogger('daskperiment').handlers == [], 'package handlers added'
        assert plugins._host is None, 'plugins loaded at import'
        assert environment._future is None, 'environment collected at import'
        print('ok')
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
