"""``python probe.py``: print the numpy, scipy and pandas sections as one JSON object.

A separate process because ``pandas.show_versions()`` imports every optional
dependency pandas knows (IPython, matplotlib, pyarrow, sqlalchemy …: about a
second and hundreds of modules), which must not happen inside the experiment.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import sys
from collections.abc import Callable
from typing import Any


def _printed(function: Callable[[], Any]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        function()
    return buffer.getvalue()


def _build_config(module: Any) -> Any:
    """A dict from ``show_config(mode="dicts")`` (numpy ≥ 1.26, scipy ≥ 1.11), else the printed text."""
    try:
        return module.show_config(mode="dicts")
    except TypeError:
        return _printed(module.show_config)


def probe() -> dict[str, Any]:
    """``numpy``, ``scipy`` and ``pandas`` sections, each only when that library is installed."""
    sections: dict[str, Any] = {}
    for name, describe in (("numpy", _build_config), ("scipy", _build_config),
                           ("pandas", lambda module: _printed(module.show_versions))):
        if importlib.util.find_spec(name) is None:
            continue
        try:
            sections[name] = describe(importlib.import_module(name))
        except Exception as exc:  # one broken library must not hide the others
            sections[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return sections


if __name__ == "__main__":
    json.dump(probe(), sys.stdout, default=str, sort_keys=True)
