"""The release artifacts install and work the way a user gets them (slow: about a minute).

``tools.build_dist`` builds every distribution into a folder; a fresh virtual env installs
them from that folder with the package index for everything else, exactly as
``pip install --find-links dist/ 'daskperiment[redis]'``. pip must pick our 1.0.0 over the
unrelated 2019 ``daskperiment 0.5.0`` on the index without ``--pre``. Then trials run on the
local backend, on a real Redis server and a MongoDB wire-protocol server started here, the
plugins are listed, and plugins installed afterwards the same way are discovered: the torch
seeder, which nothing installs by default, and the third-party example backend of
``docs/writing_backends.md`` (``examples/plugins/daskperiment-jsonl``), which runs a trial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

import daskperiment
from tools.build_dist import ROOT, build, build_all, distribution_dirs

pytestmark = pytest.mark.slow

TRIAL = textwrap.dedent("""
    import json, pathlib, sys
    import daskperiment

    backend = sys.argv[1] if len(sys.argv) > 1 else None
    ex = daskperiment.Experiment("release_check", backend=backend)
    a = ex.parameter("a")

    @ex.result
    def square(a):
        ex.save_metric("loss", epoch=0, value=1.0 / a)
        return a * a

    ex.set_parameters(a=3)
    value = square(a).compute(seed=1)
    history = ex.get_history()
    print(json.dumps({"value": value, "trials": len(history), "success": bool(history["Success"].iloc[-1]),
                      "backend": type(ex.backend).__name__, "module": daskperiment.__file__}))
""")


def run(command: list[str], cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """``daskperiment[redis]`` from freshly built artifacts in a fresh virtual env."""
    root = tmp_path_factory.mktemp("release")
    dist = root / "dist"
    artifacts = build_all(dist, isolation=False)
    assert len(artifacts) == 2 * len(distribution_dirs()), artifacts
    # a third-party plugin, built apart from ours into the same folder (docs/writing_backends.md)
    build(ROOT / "examples" / "plugins" / "daskperiment-jsonl", dist, isolation=False)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--find-links", str(dist), "daskperiment[redis]"], cwd=root)
    return {"root": root, "dist": dist, "python": python, "bin": env_dir / "bin"}


def plugin_names(installed: dict[str, Path]) -> set[str]:
    rows = json.loads(run([str(installed["bin"] / "daskperiment"), "plugins", "--json"], cwd=installed["root"]))
    return {row["name"] for row in rows}


def test_our_final_release_is_picked_without_pre(installed):
    listing = json.loads(run([str(installed["python"]), "-m", "pip", "list", "--format", "json"],
                             cwd=installed["root"]))
    ours = {row["name"]: row for row in listing if row["name"].startswith("daskperiment")}
    assert set(ours) == {"daskperiment", "daskperiment-local", "daskperiment-redis", "daskperiment-collect-conda",
                         "daskperiment-collect-cpu", "daskperiment-collect-git", "daskperiment-collect-numpy",
                         "daskperiment-collect-pip"}
    assert {row["version"] for row in ours.values()} == {daskperiment.__version__}
    assert not any("editable_project_location" in row for row in ours.values())
    version = run([str(installed["bin"] / "daskperiment"), "--version"], cwd=installed["root"])
    assert version == f"daskperiment {daskperiment.__version__}\n"


def test_trials_run_locally_and_on_redis(installed, redis_uri, tmp_path):
    (tmp_path / "trial.py").write_text(TRIAL)
    local = json.loads(run([str(installed["python"]), "trial.py"], cwd=tmp_path))
    assert local["value"] == 9 and local["trials"] == 1 and local["success"] and local["backend"] == "LocalBackend"
    assert local["module"].startswith(str(installed["root"]))  # the installed copy, not this checkout
    assert (tmp_path / "daskperiment_cache" / "release_check").is_dir()
    remote = json.loads(run([str(installed["python"]), "trial.py", redis_uri], cwd=tmp_path))
    assert remote == {**local, "backend": "RedisBackend"}
    again = json.loads(run([str(installed["python"]), "trial.py", redis_uri], cwd=tmp_path))
    assert again["trials"] == 2


def test_plugins_are_listed_and_a_later_plugin_is_discovered(installed, mongo_uri, tmp_path):
    names = plugin_names(installed)
    assert {"core", "local", "redis", "cpu", "pip", "git", "numpy", "conda"} <= names
    assert not {"seed_torch", "mongo", "jsonl"} & names
    run([str(installed["python"]), "-m", "pip", "install", "-q", "--find-links", str(installed["dist"]),
         "daskperiment-seed-torch", "daskperiment[mongo]", "daskperiment-jsonl"], cwd=installed["root"])
    assert {"seed_torch", "mongo", "jsonl"} <= plugin_names(installed)
    (tmp_path / "trial.py").write_text(TRIAL)
    remote = json.loads(run([str(installed["python"]), "trial.py", mongo_uri], cwd=tmp_path))
    assert remote["value"] == 9 and remote["backend"] == "MongoBackend"
    third_party = json.loads(run([str(installed["python"]), "trial.py", "jsonl://runs"], cwd=tmp_path))
    assert third_party["value"] == 9 and third_party["backend"] == "JsonLinesBackend"
