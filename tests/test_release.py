"""The release artifacts install and work the way a user gets them (slow: a few minutes).

``tools.build_dist`` builds every distribution into one folder; fresh virtual envs install
each extra from it, exactly as ``pip install --find-links dist/ 'daskperiment[redis]'`` (and
``[mongo]``, ``[sql]``, ``[all]``), with the package index for everything else. pip must pick
our 1.0.0 over the unrelated 2019 ``daskperiment 0.5.0`` on the index without ``--pre``: pip's
install report shows that every ``daskperiment*`` distribution came from the folder, at our
version, and nothing else of ours was installed. Then, in each env, trials run on the
backends its extra promises, against real servers started here (Redis, a MongoDB
wire-protocol server, PostgreSQL; SQLite for ``[sql]``), and ``daskperiment plugins`` lists
exactly the plugins installed. Plugins installed afterwards the same way are discovered: the
torch seeder, which nothing installs by default, and the third-party example backend of
``docs/writing_backends.md`` (``examples/plugins/daskperiment-jsonl``), which runs a trial.

The four envs are installed at once (pip mostly waits on files); each extra has an env of its
own, so no extra gets credit for what another one installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import venv
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

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
                      "loss": ex.load_metric("loss", trial_id=int(history.index[-1])).iloc[0].tolist(),
                      "backend": type(ex.backend).__name__, "module": daskperiment.__file__}))
""")

#: What every extra installs of ours: the core and its default plugins.
DEFAULT = {"daskperiment", "daskperiment-local", "daskperiment-collect-conda", "daskperiment-collect-cpu",
           "daskperiment-collect-git", "daskperiment-collect-numpy", "daskperiment-collect-pip"}
#: Each extra: the distributions of ours it adds, the plugin names they register.
EXTRAS = {
    "redis": ({"daskperiment-redis"}, {"redis"}),
    "mongo": ({"daskperiment-mongo"}, {"mongo"}),
    "sql": ({"daskperiment-sql"}, {"sql"}),
    "all": ({"daskperiment-redis", "daskperiment-mongo", "daskperiment-sql", "daskperiment-seed-torch"},
            {"redis", "mongo", "sql", "seed_torch"}),
}
DEFAULT_PLUGINS = {"core", "local", "cpu", "pip", "git", "numpy", "conda"}
OPTIONAL_PLUGINS = {"redis", "mongo", "sql", "seed_torch", "jsonl"}


@dataclass
class Env:
    """One fresh virtual env holding ``daskperiment[extra]`` installed from ``dist``."""

    extra: str
    root: Path
    dist: Path
    report: dict

    @property
    def bin(self) -> Path:
        return self.root / "venv" / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"


def clean_env() -> dict[str, str]:
    """This process's environment without what would point a child at the checkout's venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(command: list[str | Path], cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=clean_env())
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def envs(tmp_path_factory) -> dict[str, Env]:
    """Every distribution built into one ``dist/``; ``daskperiment[extra]`` installed from it
    into a fresh virtual env per extra, the four installs running at once."""
    top = tmp_path_factory.mktemp("release")
    dist = top / "dist"
    artifacts = build_all(dist, isolation=False)
    assert len(artifacts) == 2 * len(distribution_dirs()), artifacts
    # a third-party plugin, built apart from ours into the same folder (docs/writing_backends.md)
    build(ROOT / "examples" / "plugins" / "daskperiment-jsonl", dist, isolation=False)
    installs = {}
    for extra in EXTRAS:
        root = top / extra
        venv.create(root / "venv", with_pip=True, clear=True)
        command = [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--find-links", str(dist),
                   "--report", str(root / "report.json"), f"daskperiment[{extra}]"]
        installs[extra] = (root, subprocess.Popen(command, cwd=root, env=clean_env(), stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, text=True))
    result = {}
    for extra, (root, process) in installs.items():
        out, _ = process.communicate(timeout=900)
        assert process.returncode == 0, f"pip install daskperiment[{extra}] exited {process.returncode}:\n{out[-4000:]}"
        result[extra] = Env(extra, root, dist, json.loads((root / "report.json").read_text()))
    return result


def plugin_names(env: Env) -> set[str]:
    rows = json.loads(run([env.bin / "daskperiment", "plugins", "--json"], cwd=env.root))
    return {row["name"] for row in rows}


def trial(env: Env, tmp_path: Path, backend: str | None = None) -> dict:
    """The trial script run by the env's Python in ``tmp_path`` (on ``backend``, else the local one)."""
    (tmp_path / "trial.py").write_text(TRIAL)
    result = json.loads(run([env.python, "trial.py", *([backend] if backend else [])], cwd=tmp_path))
    assert result["module"].startswith(str(env.root))  # the installed copy, not this checkout
    assert result["value"] == 9 and result["success"] and result["loss"] == [1.0 / 3]
    return result


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_installs_our_final_release_from_the_folder(envs, extra):
    env = envs[extra]
    ours = {item["metadata"]["name"]: item for item in env.report["install"]
            if item["metadata"]["name"].startswith("daskperiment")}
    assert set(ours) == DEFAULT | EXTRAS[extra][0]  # without --pre, and nothing else of ours
    for name, item in ours.items():
        assert item["metadata"]["version"] == daskperiment.__version__, name
        location = Path(unquote(urlsplit(item["download_info"]["url"]).path))
        assert location.parent == env.dist and location.suffix == ".whl", (name, location)
    listing = json.loads(run([env.python, "-m", "pip", "list", "--format", "json"], cwd=env.root))
    installed = {row["name"]: row for row in listing if row["name"].startswith("daskperiment")}
    assert set(installed) == set(ours)
    assert not any("editable_project_location" in row for row in installed.values())
    version = run([env.bin / "daskperiment", "--version"], cwd=env.root)
    assert version == f"daskperiment {daskperiment.__version__}\n"


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_lists_exactly_its_plugins(envs, extra):
    names = plugin_names(envs[extra])
    assert DEFAULT_PLUGINS | EXTRAS[extra][1] <= names
    assert not (OPTIONAL_PLUGINS - EXTRAS[extra][1]) & names


def test_redis_extra_runs_trials_locally_and_on_redis(envs, redis_uri, tmp_path):
    env = envs["redis"]
    local = trial(env, tmp_path)
    assert local["trials"] == 1 and local["backend"] == "LocalBackend"
    assert (tmp_path / "daskperiment_cache" / "release_check").is_dir()
    remote = trial(env, tmp_path, redis_uri)
    assert remote == {**local, "backend": "RedisBackend"}
    assert trial(env, tmp_path, redis_uri)["trials"] == 2


def test_mongo_extra_runs_a_trial_on_mongodb(envs, mongo_uri, tmp_path):
    remote = trial(envs["mongo"], tmp_path, mongo_uri)
    assert remote["trials"] == 1 and remote["backend"] == "MongoBackend"


def test_sql_extra_runs_trials_on_sqlite_and_postgresql(envs, postgresql_url, tmp_path):
    env = envs["sql"]
    on_file = trial(env, tmp_path, "sqlite:///experiments.db")
    assert on_file["trials"] == 1 and on_file["backend"] == "SQLBackend"
    assert (tmp_path / "experiments.db").is_file()
    on_server = trial(env, tmp_path, postgresql_url)
    assert on_server["trials"] == 1 and on_server["backend"] == "SQLBackend"


def test_all_extra_runs_a_trial_on_every_server_backend(envs, redis_uri, mongo_uri, postgresql_url, tmp_path):
    env = envs["all"]
    backends = {redis_uri: "RedisBackend", mongo_uri: "MongoBackend", postgresql_url: "SQLBackend",
                "sqlite:///experiments.db": "SQLBackend"}
    for uri, backend in backends.items():
        assert trial(env, tmp_path, uri)["backend"] == backend, uri


def test_a_plugin_installed_later_is_discovered(envs, tmp_path):
    """Runs last on the ``[redis]`` env, which it changes: the torch seeder and a third-party backend."""
    env = envs["redis"]
    run([env.python, "-m", "pip", "install", "-q", "--find-links", env.dist, "daskperiment-seed-torch",
         "daskperiment-jsonl"], cwd=env.root)
    assert {"seed_torch", "jsonl"} <= plugin_names(env)
    third_party = trial(env, tmp_path, "jsonl://runs")
    assert third_party["trials"] == 1 and third_party["backend"] == "JsonLinesBackend"
