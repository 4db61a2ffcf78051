"""The CPU collector: the ``cpu`` section, detailed CPU facts from py-cpuinfo.

Brand, vendor, family/model/stepping, core count, advertised frequency, cache
sizes and instruction-set flags. Registered through the ``daskperiment`` entry
point ``cpu``.

py-cpuinfo is run as ``python -m cpuinfo --json`` in a subprocess with a
timeout, which is what its own ``get_cpu_info()`` does (it executes CPUID in a
child process for safety) minus the missing timeout and the silent ``{}`` on
failure. It takes about a second, so the answer is kept in daskperiment's
environment cache (:mod:`daskperiment.collector_cache`) per boot, Python and py-cpuinfo
version: the CPU cannot change without a reboot.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from daskperiment import hookimpl
from daskperiment.collector_cache import boot_id, cached_sections
from daskperiment.environment import ToolError, run_tool

__all__ = ["VOLATILE_KEYS", "collect_environment"]

#: Seconds py-cpuinfo may take.
TIMEOUT = 20.0

#: Measured values that differ from run to run (the current clock speed): keeping them, every
#: trial would warn that the CPU changed.
VOLATILE_KEYS = ("hz_actual", "hz_actual_friendly")


def cache_key() -> list[Any] | None:
    """What the answer depends on; ``None`` (no caching) where the boot cannot be told apart."""
    boot = boot_id()
    if boot is None:
        return None
    try:
        cpuinfo_version = version("py-cpuinfo")
    except PackageNotFoundError:
        cpuinfo_version = None
    return [boot, sys.executable, sys.version, cpuinfo_version, sorted(VOLATILE_KEYS)]


@hookimpl
def collect_environment() -> dict[str, Any]:
    return cached_sections("cpu", cache_key(), _collect)


def _collect() -> dict[str, Any]:
    try:
        output = run_tool([sys.executable, "-m", "cpuinfo", "--json"], timeout=TIMEOUT)
        info = json.loads(output)
    except ToolError as exc:
        return {"cpu": {"error": str(exc)}}
    except ValueError:
        return {"cpu": {"error": f"py-cpuinfo printed no JSON: {output[:200]!r}"}}
    return {"cpu": {key: value for key, value in sorted(info.items()) if key not in VOLATILE_KEYS}}
