"""The numpy collector: ``numpy``, ``scipy`` and ``pandas`` sections.

``numpy.show_config()`` and ``scipy.show_config()`` (build configuration: BLAS
and LAPACK libraries, compilers, SIMD extensions) as JSON, and the text
``pandas.show_versions()`` prints, each only when that library is installed.
Registered through the ``daskperiment`` entry point ``numpy``.

They are gathered by the :mod:`.probe` script in a subprocess with a timeout (see there
why), with the parent's ``sys.path`` so it sees the same libraries. That takes about a
second, so the answer is kept in daskperiment's environment cache
(:mod:`daskperiment.collector_cache`) under the interpreter, every installed distribution's
name and version, the platform and the locale variables pandas reports.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any

from daskperiment import hookimpl
from daskperiment.collector_cache import cached_sections, installed_distributions
from daskperiment.environment import ToolError, run_tool

__all__ = ["collect_environment"]

#: Run as a script, not with ``-m``: importing this package would import daskperiment (0.7 s).
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py")
#: Seconds the probe may take (importing pandas' optional dependencies can be slow).
TIMEOUT = 60.0


#: Environment variables behind what ``pandas.show_versions()`` reports (LANG, LOCALE, sys.path).
REPORTED_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH")


def cache_key() -> list[Any]:
    """Everything the probe's answer depends on (what is installed, where, and how it runs)."""
    return [sys.executable, sys.version, installed_distributions(), platform.uname()[:3],
            [os.environ.get(name) for name in REPORTED_VARIABLES], os.path.getmtime(PROBE)]


@hookimpl
def collect_environment() -> dict[str, Any]:
    return cached_sections("numpy", cache_key(), _collect)


def _collect() -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}
    try:
        output = run_tool([sys.executable, PROBE], timeout=TIMEOUT, env=env)
        sections = json.loads(output)
    except ToolError as exc:
        return {"numpy": {"error": str(exc)}}
    except ValueError:
        sections = None
    if not isinstance(sections, dict):
        return {"numpy": {"error": f"the probe printed no JSON object: {output[:200]!r}"}}
    return sections
