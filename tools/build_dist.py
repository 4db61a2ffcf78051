"""Build the wheel and sdist of every distribution into one folder: ``python -m tools.build_dist``.

Every distribution of the monorepo — ``core/`` and each ``plugins/*/`` — is built with
`build <https://build.pypa.io>`_ (``python -m build``): the sdist first, then the wheel from
that sdist, so a file missing from the sdist fails here rather than on a user's machine.
Older artifacts of these distributions in the output folder are removed first, so the folder
holds exactly one version of each for ``pip install --find-links dist/ 'daskperiment[redis]'``.

``--no-isolation`` builds with the running environment's hatchling instead of a fresh build
environment per distribution (fast; what the release test uses, with hatchling from
``requirements/dev.txt``).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import re
import subprocess
import sys
from collections.abc import Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
logger = logging.getLogger("tools.build_dist")


def distribution_dirs(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """``core`` and every plugin folder with a ``pyproject.toml``, in build order."""
    return [root / "core", *sorted(p.parent for p in (root / "plugins").glob("*/pyproject.toml"))]


def artifact_prefix(project: pathlib.Path) -> str:
    """How the distribution's wheel and sdist file names start (``pytest_daskperiment-``)."""
    name = re.search(r'^name = "([^"]+)"', (project / "pyproject.toml").read_text(), re.M)
    if name is None:
        raise SystemExit(f"{project}/pyproject.toml names no distribution")
    return re.sub(r"[-_.]+", "_", name.group(1)).lower() + "-"


def artifacts(outdir: pathlib.Path, projects: list[pathlib.Path]) -> list[pathlib.Path]:
    """The wheels and sdists of ``projects`` in ``outdir``, sorted."""
    prefixes = tuple(artifact_prefix(project) for project in projects)
    return sorted(p for p in outdir.iterdir() if p.name.startswith(prefixes) and p.name.endswith((".whl", ".tar.gz")))


def build(project: pathlib.Path, outdir: pathlib.Path, *, isolation: bool = True) -> None:
    command = [sys.executable, "-m", "build", "--outdir", str(outdir), str(project)]
    if not isolation:
        command.insert(3, "--no-isolation")
    logger.info("building %s", project.relative_to(ROOT) if project.is_relative_to(ROOT) else project)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"build of {project} failed ({' '.join(command)}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}")


def build_all(outdir: pathlib.Path, *, isolation: bool = True, root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Build every distribution into ``outdir`` (removing earlier artifacts of ours); return the artifacts."""
    projects = distribution_dirs(root)
    outdir.mkdir(parents=True, exist_ok=True)
    for old in artifacts(outdir, projects):
        old.unlink()
    for project in projects:
        build(project, outdir, isolation=isolation)
    return artifacts(outdir, projects)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.build_dist", description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=pathlib.Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument("--no-isolation", action="store_true",
                        help="build with this environment's hatchling (no build venv per distribution)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for artifact in build_all(args.outdir, isolation=not args.no_isolation):
        print(artifact.relative_to(args.outdir.parent) if artifact.is_relative_to(args.outdir.parent) else artifact)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
