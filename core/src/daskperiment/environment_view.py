"""Environment records as text, as the original daskperiment printed them.

The environment is stored as plain-data sections (see :mod:`daskperiment.environment`).
``Experiment.get_environment()`` returns them wrapped in :class:`EnvironmentView`, a
``dict`` that prints as readable text, so code written for the original (which
returned text) can ``print()`` it, while new code reads sections as data.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

__all__ = ["CATEGORY_ALIASES", "EnvironmentView", "SectionView", "installed_packages", "pip_freeze", "resolve_category", "section_text",
           "view"]

#: The original's category names that are spelled differently here.
CATEGORY_ALIASES = {"platform": "device"}

#: Headings of well-known sections (others are title-cased).
TITLES = {"device": "Platform Information", "python": "Python Information", "cpu": "CPU Information",
          "git": "Git Information", "conda": "conda Information", "numpy": "NumPy Information",
          "scipy": "SciPy Information", "pandas": "pandas Information",
          "requirements": "Installed Python Packages"}


def resolve_category(category: str, sections: Mapping[str, Any]) -> str:
    """Our section name for ``category`` (ours or the original's, case-insensitive)."""
    name = str(category).lower()
    return name if name in sections else CATEGORY_ALIASES.get(name, name)


def _label(key: str) -> str:
    return key.replace("_", " ").strip().capitalize() if key.islower() else key


def _value_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def section_text(value: Any) -> str:
    """One section as lines of ``Key: value`` (text sections as they are)."""
    if isinstance(value, str):
        return value.strip("\n")
    if isinstance(value, Mapping):
        return "\n".join(f"{_label(str(key))}: {_value_text(item)}" for key, item in value.items())
    return _value_text(value)


class EnvironmentView(dict[str, Any]):
    """Environment sections (a plain ``dict``) that ``print()`` as readable text."""

    def __str__(self) -> str:
        blocks = []
        for name, value in self.items():
            body = "\n".join(f"  {line}" for line in section_text(value).splitlines())
            blocks.append(f"{TITLES.get(name, _label(name))}:\n{body}")
        return "\n".join(blocks) + "\n"


class SectionView(dict[str, Any]):
    """One dict section that ``print()`` as ``Key: value`` lines."""

    def __str__(self) -> str:
        return section_text(self) + "\n"


def view(value: Any) -> Any:
    """A section as returned by ``get_environment(category=...)``."""
    return SectionView(value) if isinstance(value, dict) else value


_REQUIREMENT = re.compile(r"(?P<name>\S+)\s+(?P<version>\S+)(?:\s+\((?P<where>.*)\))?")


def installed_packages(requirements: Any) -> dict[str, tuple[str, str]]:
    """The pip collector's ``requirements`` text (``name version (location)`` lines) → name →
    (version, location): the one reading of that section, for ``pip freeze`` text, package
    differences and the dashboard's table."""
    found: dict[str, tuple[str, str]] = {}
    for line in str(requirements or "").splitlines():
        match = _REQUIREMENT.match(line.strip())
        if match:
            found[match["name"]] = (match["version"], match["where"] or "")
    return found


def pip_freeze(requirements: str) -> str:
    """``name==version`` lines, as ``pip freeze`` prints, from the recorded package list."""
    lines = [f"{name}=={version}" for name, (version, _) in installed_packages(requirements).items()]
    return "\n".join(lines) + ("\n" if lines else "")
