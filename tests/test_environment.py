"""Environment capture: once per process, again when something changed, warnings with real changes.

The GPU collector example comes first, imports included: docs/writing_collectors.md shows it as it is.
"""

from __future__ import annotations

# -- start gpu example
import shutil

from daskperiment import hookimpl
from daskperiment.environment import ToolError, run_tool


class GpuCollector:
    """Adds a ``gpu`` section: what ``nvidia-smi`` reports, when it is installed."""

    QUERY = "--query-gpu=name,driver_version,memory.total,compute_cap"

    @hookimpl
    def collect_environment(self):
        executable = shutil.which("nvidia-smi")
        if executable is None:
            return None  # no GPU tooling: no section, and no cost
        try:
            return {"gpu": run_tool([executable, self.QUERY, "--format=csv"], timeout=10)}
        except ToolError as exc:  # missing driver, timeout …: recorded, the trial goes on
            return {"gpu": {"error": str(exc)}}
# -- end gpu example

import base64
import hashlib
import logging
import os
import pathlib
import re
import subprocess
import sys
import site
import time
import zipfile

import daskperiment
import pytest
from daskperiment import builtin_hooks, environment
from daskperiment.plugins import make_plugin_manager, set_plugin_manager
from daskperiment.testing.collectors import CollectorTests

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The slow collectors (a second each, in subprocesses) are not what these tests are about.
SLOW = ("cpu", "numpy", "conda")


FAKE_NVIDIA_SMI = """#!/bin/sh
echo "name, driver_version, memory.total [MiB], compute_cap"
echo "NVIDIA A100-SXM4-40GB, 550.54.15, 40960 MiB, 8.0"
"""


def messages(caplog, level=logging.WARNING):
    return [r.getMessage() for r in caplog.records if r.levelno == level]


@pytest.fixture
def plugin_manager():
    """Fast collectors only, a fresh environment cache; both restored afterwards."""
    pm = make_plugin_manager(blocked=SLOW)
    set_plugin_manager(pm)
    environment.reset()
    yield pm
    set_plugin_manager(None)
    environment.reset()


def quick_experiment(name="env", backend=None):
    ex = daskperiment.Experiment(name, backend=backend)
    x = ex.parameter("x", default=1)

    @ex.result
    def double(x):
        return 2 * x

    return ex, double(x)


class Counter:
    """A collector that counts its calls; its fingerprint is whatever the test sets."""

    def __init__(self, fingerprint=None):
        self.calls = 0
        self.fingerprint = fingerprint

    @hookimpl
    def collect_environment(self):
        self.calls += 1
        return {"counter": {"fingerprint": self.fingerprint}}

    def environment_fingerprint(self):
        return self.fingerprint


# ---- every collector passes the collector checks ------------------------------------------


class TestCoreCollector(CollectorTests):
    plugin = builtin_hooks
    entry_point = "core"
    sections = ("device", "python")


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for nvidia-smi")
class TestGpuExample(CollectorTests):
    plugin = GpuCollector()
    sections = ("gpu",)

    @pytest.fixture(scope="class")
    @classmethod
    def collector_setup(cls, tmp_path_factory):
        bin_dir = tmp_path_factory.mktemp("bin")
        (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
        (bin_dir / "nvidia-smi").chmod(0o755)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
            yield

    def test_records_what_nvidia_smi_prints(self, runs):
        assert "NVIDIA A100-SXM4-40GB, 550.54.15" in runs["calls"][0].result["gpu"]


def test_gpu_example_without_nvidia_smi_adds_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert GpuCollector().collect_environment() is None


def test_gpu_example_in_a_trial(plugin_manager, monkeypatch, tmp_path):
    (tmp_path / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (tmp_path / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    plugin_manager.register(GpuCollector(), name="gpu")
    ex, result = quick_experiment()
    result.compute(seed=1)
    assert "NVIDIA A100" in ex.get_environment(trial_id=1, category="gpu")
    assert list((ex.backend.path / "environment").glob("gpu_env_*.txt"))


def test_gpu_example_is_the_one_documented():
    doc = (ROOT / "docs" / "writing_collectors.md").read_text()
    source = pathlib.Path(__file__).read_text()
    example = source.split("# -- start gpu example\n")[1].split("# -- end gpu example")[0]
    assert example.strip() in doc


# ---- once per process, again only when something changed ----------------------------------


def test_a_later_trial_does_not_collect_again(plugin_manager):
    counter = Counter()
    plugin_manager.register(counter, name="counter")
    _, result = quick_experiment()
    for _ in range(3):
        result.compute(seed=1)
    assert counter.calls == 1


def test_a_changed_fingerprint_collects_that_collector_again(plugin_manager):
    counter, other = Counter("a"), Counter("x")
    plugin_manager.register(counter, name="counter")
    plugin_manager.register(other, name="other")
    _, result = quick_experiment()
    result.compute(seed=1)
    counter.fingerprint = "b"
    result.compute(seed=1)
    result.compute(seed=1)
    assert (counter.calls, other.calls) == (2, 1)


def test_a_plugin_registered_later_is_collected(plugin_manager):
    ex, result = quick_experiment()
    result.compute(seed=1)
    plugin_manager.register(Counter(), name="counter")
    result.compute(seed=1)
    assert "counter" in ex.get_environment(trial_id=2) and "counter" not in ex.get_environment(trial_id=1)


def test_stored_once_and_referenced_by_each_trial(plugin_manager):
    ex, result = quick_experiment()
    for _ in range(3):
        result.compute(seed=1)
    digests = {record["environment"] for record in ex.backend.load_trials()}
    assert digests == {environment.current()[0]}
    digest = digests.pop()
    files = sorted(p.name for p in (ex.backend.path / "environment").iterdir())
    assert files == sorted(f"{section}_env_{digest}.{'txt' if isinstance(value, str) else 'json'}"
                           for section, value in ex.get_environment().items())


def test_get_environment(plugin_manager):
    ex, result = quick_experiment()
    result.compute(seed=1)
    now = ex.get_environment()
    assert {"device", "python", "requirements", "git"} <= set(now)
    assert now == ex.get_environment(trial_id=1)
    assert ex.get_environment(category="python")["version"] == ".".join(map(str, sys.version_info[:3]))
    assert ex.get_environment(trial_id=1, category="requirements") == now["requirements"]
    now["python"]["version"] = "changed by the caller"
    assert ex.get_environment(category="python")["version"] != "changed by the caller"
    with pytest.raises(ValueError, match="Category must be either device, .*given: 'nope'"):
        ex.get_environment(category="nope")
    with pytest.raises(daskperiment.TrialNotFoundError):
        ex.get_environment(trial_id=99)


# ---- failures are recorded, logged once, and the trial goes on -------------------------------


def test_a_failing_collector_is_recorded_and_logged_once(plugin_manager, caplog):
    class Broken(Counter):
        @hookimpl
        def collect_environment(self):
            self.calls += 1
            raise RuntimeError("tool exploded")

    broken = Broken(0)
    plugin_manager.register(broken, name="broken")
    ex, result = quick_experiment()
    for i in range(3):
        broken.fingerprint = i  # collected again every trial, logged only once
        assert result.compute(seed=1) == 2
    assert broken.calls == 3
    assert ex.get_environment(trial_id=3, category="broken") == {"error": "RuntimeError: tool exploded"}
    failures = [m for m in messages(caplog) if "failed" in m]
    assert failures == ["Environment collector for section 'broken' failed: RuntimeError: tool exploded"]


def test_a_hanging_collector_times_out(plugin_manager, monkeypatch):
    class Hanging:
        @hookimpl
        def collect_environment(self):
            time.sleep(3)
            return {"never": "seen"}

    monkeypatch.setattr(environment, "COLLECTOR_TIMEOUT", 0.3)
    plugin_manager.register(Hanging(), name="hanging")
    ex, result = quick_experiment()
    start = time.perf_counter()
    assert result.compute(seed=1) == 2
    assert time.perf_counter() - start < 2.5
    assert ex.get_environment(trial_id=1, category="hanging") == {"error": "timed out after 0.3 s"}


def test_run_tool_reasons():
    with pytest.raises(environment.ToolError, match="^no-such-tool-xyz: command not found$"):
        environment.run_tool(["no-such-tool-xyz"], timeout=5)
    with pytest.raises(environment.ToolError, match=r"^python -c import sys; .* exited with status 3: bad$"):
        environment.run_tool([sys.executable, "-c", "import sys; sys.stderr.write('bad\\n'); sys.exit(3)"], timeout=30)


# ---- warnings with real changes ---------------------------------------------------------------


def test_unchanged_environment_does_not_warn(plugin_manager, caplog):
    _, result = quick_experiment()
    for _ in range(3):
        result.compute(seed=1)
    assert not [m for m in messages(caplog) if "has been changed" in m]


def test_package_installed_between_two_trials_in_one_process(plugin_manager, tmp_path, monkeypatch, caplog):
    """A ``%pip install`` in a notebook between two trials: the pip fingerprint notices."""
    site = tmp_path / "site-packages"
    site.mkdir()
    os.utime(site, ns=(0, 0))
    monkeypatch.syspath_prepend(str(site))
    _, result = quick_experiment()
    result.compute(seed=1)
    info = site / "tinypkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n")
    result.compute(seed=1)
    warnings = messages(caplog)
    start = warnings.index("Installed Python packages have been changed")
    assert re.fullmatch(r"@@ -\d+,0 \+\d+ @@", warnings[start + 1])
    assert warnings[start + 2] == f"+tinypkg 1.0 ({site})"


def wheel(directory: pathlib.Path, name: str, version: str) -> pathlib.Path:
    """A minimal pure-Python wheel, written by hand: installing it needs no network and no build backend."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"__version__ = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name_in_zip, text in files.items():
            archive.writestr(name_in_zip, text)
    return path


TRIAL_SCRIPT = """
import daskperiment, pathlib
ex = daskperiment.Experiment("venv_pj", backend=pathlib.Path({cache!r}))
x = ex.parameter("x", default=1)

@ex.result
def double(x):
    return 2 * x

double(x).compute(seed=1)
"""


def test_package_installed_into_a_virtual_env_between_two_trials(tmp_path):
    """Two runs of a script in a fresh virtual env, ``pip install`` in between: the second run warns."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # See this interpreter's packages (editable installs included) whether it runs in a venv or
    # not: --system-site-packages would only reach the base interpreter's.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    parents = [path for path in site.getsitepackages() if os.path.isdir(path)]
    pathlib.Path(purelib, "_parent_site.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in parents))
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT.format(cache=str(tmp_path / "cache")))
    env = {**os.environ, "DASKPERIMENT_DISABLE_PLUGINS": ",".join(SLOW)}

    def run_trial() -> str:
        done = subprocess.run([str(python), str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stderr

    first = run_trial()
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                    "-q", str(wheel(tmp_path, "tinypkg", "1.0"))], check=True, timeout=120, capture_output=True)
    second = run_trial()
    assert "Installed Python packages have been changed" not in first
    assert "[WARNING] Installed Python packages have been changed" in second
    tinypkg_dir = subprocess.run([str(python), "-c", "import tinypkg, os; print(os.path.dirname(tinypkg.__path__[0]))"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert f"[WARNING] +tinypkg 1.0 ({tinypkg_dir})" in second


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_new_commit_between_two_trials(plugin_manager, tmp_path, caplog):
    """A commit between two trials in one process: the git fingerprint notices, the warning shows the diff."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()

    git("init", "-q")
    (tmp_path / "model.py").write_text("alpha = 1\n")
    git("add", "model.py")
    git("commit", "-q", "-m", "first")
    first = git("rev-parse", "HEAD")
    ex, result = quick_experiment(backend=tmp_path / "cache")
    result.compute(seed=1)
    (tmp_path / "model.py").write_text("alpha = 2\n")
    git("commit", "-q", "-am", "second")
    result.compute(seed=1)
    second = git("rev-parse", "HEAD")
    warnings = messages(caplog)
    start = warnings.index("Git information has been changed")
    assert warnings[start + 1:start + 4] == ["@@ -3 +3 @@", f'- "commit": "{first}",', f'+ "commit": "{second}",']
    assert ex.get_environment(trial_id=2, category="git")["commit"] == second
    assert ex.get_environment(trial_id=1, category="git")["commit"] == first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_process_forked_during_collection_collects_again(plugin_manager):
    class Slow:
        @hookimpl
        def collect_environment(self):
            time.sleep(0.5)
            return {"slow": "done"}

    plugin_manager.register(Slow(), name="slow")
    environment.prefetch()
    pid = os.fork()
    if pid == 0:  # the child: the parent's collection thread does not exist here
        try:
            os._exit(0 if environment.current()[1].get("slow") == "done" else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 30
    while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if waited[0] == 0:  # the child hangs waiting for the parent's collection: the bug this guards against
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child never got an environment")
    assert os.waitstatus_to_exitcode(waited[1]) == 0


BAD_COLLECTOR = '''
import os, socket, subprocess, sys, time

from daskperiment import hookimpl
from daskperiment.testing.collectors import CollectorTests


class Bad:
    @hookimpl
    def collect_environment(self):
        print("collecting")
        os.environ["BAD_COLLECTOR"] = str(time.time())
        try:
            socket.create_connection(("example.org", 80), timeout=1)
        except OSError:
            pass
        return {"bad": {"when": time.time(), "pair": (1, 2)}}

    def environment_fingerprint(self):
        return subprocess.run([sys.executable, "-c", "pass"], check=False).returncode


class TestBad(CollectorTests):
    plugin = Bad()
    sections = ("bad", "missing")
'''


def test_collector_checks_catch_a_bad_collector(tmp_path):
    """The checks fail a collector that prints, touches os.environ, uses the network, is unstable …"""
    (tmp_path / "test_bad.py").write_text(BAD_COLLECTOR)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", "test_bad.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False).stdout
    failed = set(re.findall(r"^FAILED test_bad.py::TestBad::(\w+)", out, re.MULTILINE))
    assert failed == {"test_returns_named_sections", "test_sections_are_plain_json", "test_is_stable",
                      "test_uses_no_network", "test_prints_nothing", "test_has_no_global_side_effects",
                      "test_fingerprint_is_cheap_and_stable"}, out
    assert "2 passed, 1 skipped" in out  # hook implemented, fast enough; no entry point to check
