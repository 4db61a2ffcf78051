"""Plugin discovery, blocking, listing, and every hook exercised (``test_hook_<name>``)."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import subprocess
import sys
import types

import pytest

import daskperiment
from daskperiment import hookimpl, hookspecs
from daskperiment.plugins import list_plugins, make_plugin_manager, set_plugin_manager

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "daskperiment_spec"))


@pytest.fixture
def plugin_manager():
    """A fresh manager installed process-wide for the test, restored afterwards."""
    pm = make_plugin_manager()
    set_plugin_manager(pm)
    yield pm
    set_plugin_manager(None)


def test_builtin_plugins_are_registered_like_third_party_ones():
    rows = {row["name"]: row for row in list_plugins(make_plugin_manager())}
    assert rows["core"]["distribution"] == "daskperiment"
    assert rows["local"]["distribution"] == "daskperiment-local"
    assert rows["local"]["version"] == daskperiment.__version__
    assert "register_backends" in rows["local"]["hooks"]
    eps = {ep.name for ep in importlib.metadata.entry_points(group="daskperiment")}
    assert {"core", "local"} <= eps


def test_entry_point_discovery_without_installing(monkeypatch):
    """pluggy's pattern: a fake distribution with a fake entry point gets loaded."""
    module = types.ModuleType("fake_daskperiment_plugin")

    @hookimpl
    def seed_random_state(seed):
        module.seen = seed

    module.seed_random_state = seed_random_state
    sys.modules["fake_daskperiment_plugin"] = module
    ep = importlib.metadata.EntryPoint("fake", "fake_daskperiment_plugin", "daskperiment")
    real = importlib.metadata.entry_points

    def entry_points(group=None, **kw):
        eps = list(real(group=group, **kw))
        return eps + [ep] if group == "daskperiment" else eps

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    pm = make_plugin_manager()
    assert pm.get_plugin("fake") is module
    pm.hook.seed_random_state(seed=3)
    assert module.seen == 3
    pm = make_plugin_manager(blocked=("fake",))
    assert pm.get_plugin("fake") is None
    del sys.modules["fake_daskperiment_plugin"]


def test_broken_plugin_import_names_the_plugin(monkeypatch):
    ep = importlib.metadata.EntryPoint("broken", "no_such_module_xyz", "daskperiment")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None, **kw: list(real(group=group, **kw)) + ([ep] if group == "daskperiment" else []))
    with pytest.raises(ImportError, match="Error importing daskperiment plugin 'broken'"):
        make_plugin_manager()


def test_autoload_can_be_disabled(monkeypatch):
    monkeypatch.setenv("DASKPERIMENT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = make_plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    assert names == {"core", "local"}  # built-ins still come from DEFAULT_PLUGINS


def test_blocking_a_backend_plugin_gives_clear_error(monkeypatch):
    monkeypatch.setenv("DASKPERIMENT_DISABLE_PLUGINS", "local")
    set_plugin_manager(None)
    try:
        with pytest.raises(daskperiment.UnknownBackendError, match="DASKPERIMENT_DISABLE_PLUGINS"):
            daskperiment.Experiment("blocked", backend="file:///tmp/x")
    finally:
        monkeypatch.delenv("DASKPERIMENT_DISABLE_PLUGINS")
        set_plugin_manager(None)


def test_core_cannot_be_blocked():
    with pytest.raises(daskperiment.UsageError, match="cannot be disabled"):
        make_plugin_manager(blocked=("core",))


def test_only_listed_plugins(monkeypatch):
    monkeypatch.setenv("DASKPERIMENT_PLUGINS", "local")
    names = {name for name, _ in make_plugin_manager().list_name_plugin()}
    assert names == {"core", "local"}


def test_plugins_command_lists_versions_and_hooks():
    out = subprocess.run([sys.executable, "-m", "daskperiment.cli", "plugins"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert re.search(r"^local\s+daskperiment-local 1\.0\.0\s+make_backend, register_backends", out, re.M)
    assert re.search(r"^core\s+daskperiment 1\.0\.0", out, re.M)


def test_duplicate_scheme_names_both_plugins():
    from daskperiment.backends.registry import BackendRegistry
    from daskperiment_local import LocalBackend

    registry = BackendRegistry()
    registry.register("file", LocalBackend, "local")

    class Other(LocalBackend):
        pass

    with pytest.raises(daskperiment.UnknownBackendError, match="registered twice.*'local'.*'other'"):
        registry.register("file", Other, "other")


def test_every_hook_is_documented():
    """datasette's guardrail: each hook has a heading with its exact signature in the docs."""
    import inspect

    docs = (ROOT / "docs" / "plugin_hooks.md").read_text()
    for name in HOOKS:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"## {name}({params})" in docs, f"document hook {name}({params}) in docs/plugin_hooks.md"


def test_every_hook_has_a_test():
    """Each hook has a test named ``test_hook_<name>`` somewhere in the suite."""
    sources = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for name in HOOKS:
        assert f"def test_hook_{name}(" in sources, f"write test_hook_{name}"


# ---- one test per hook ---------------------------------------------------------


class Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def trial_started(self, experiment_id, trial_id, parameters, seed):
        self.calls.append(("started", experiment_id, trial_id, parameters, seed))

    @hookimpl
    def step_finished(self, experiment_id, trial_id, step):
        self.calls.append(("step", trial_id, step.name, step.error is None))

    @hookimpl
    def trial_finished(self, experiment_id, trial_id, record):
        self.calls.append(("finished", trial_id, record["success"]))


@pytest.fixture
def recorder(plugin_manager):
    rec = Recorder()
    plugin_manager.register(rec, name="recorder")
    yield rec


def _run_quickstart(b=2):
    ex = daskperiment.Experiment("hooks")
    a = ex.parameter("a", default=1)
    bp = ex.parameter("b", default=b)

    @ex
    def prepare(a, b):
        return a + b

    @ex.result
    def score(s):
        return 10 / s

    return ex, score(prepare(a, bp))


def test_hook_trial_started(recorder):
    _, s = _run_quickstart()
    s.compute(seed=4)
    assert ("started", "hooks", 1, {"a": 1, "b": 2}, 4) in recorder.calls


def test_hook_step_finished(recorder):
    _, s = _run_quickstart(b=-1)
    with pytest.raises(ZeroDivisionError):
        s.compute(seed=1)
    assert ("step", 1, "prepare", True) in recorder.calls
    assert ("step", 1, "score", False) in recorder.calls


def test_hook_trial_finished(recorder):
    _, s = _run_quickstart()
    s.compute(seed=1)
    assert recorder.calls[-1] == ("finished", 1, True)


def test_hook_seed_random_state(plugin_manager):
    seeds = []

    class Seeder:
        @hookimpl
        def seed_random_state(self, seed):
            seeds.append(seed)

    plugin_manager.register(Seeder(), name="seeder")
    _, s = _run_quickstart()
    s.compute(seed=11)
    assert seeds == [11, 11, 11]  # driver, then before each of the two steps


def test_hook_hash_value(plugin_manager, caplog):
    class ByLength:
        @hookimpl(tryfirst=True)
        def hash_value(self, value):
            return "same" if isinstance(value, str) else None

    plugin_manager.register(ByLength(), name="bylength")
    ex = daskperiment.Experiment("hashing")
    x = ex.parameter("x")

    @ex.result
    def f(x):
        return x

    for value in (1, 2):
        ex.set_parameters(x=value)
        f(x).compute()
    assert not [r for r in caplog.records if "result is changed" in r.getMessage()]
    ex.set_parameters(x="a")
    f(x).compute()
    assert not [r for r in caplog.records if "result is changed" in r.getMessage()]


def test_hook_collect_environment(plugin_manager):
    class Extra:
        @hookimpl
        def collect_environment(self):
            return {"extra_section": {"answer": 42}}

    plugin_manager.register(Extra(), name="extra")
    from daskperiment import environment

    environment.reset()
    try:
        sections = environment.collect()
        assert sections["extra_section"] == {"answer": 42}
        assert "python" in sections and "device" in sections
    finally:
        environment.reset()


def test_hook_register_backends(plugin_manager):
    from daskperiment_local import LocalBackend

    class MemoryLike(LocalBackend):
        scheme = "memtest"

    class Plugin:
        @hookimpl
        def register_backends(self, register):
            register("memtest", MemoryLike)

    plugin_manager.register(Plugin(), name="memtest")
    set_plugin_manager(plugin_manager)  # rebuild the registry with the new plugin
    ex = daskperiment.Experiment("memtest", backend="memtest://somewhere")
    assert type(ex.backend) is MemoryLike


def test_hook_make_backend(plugin_manager, tmp_path):
    from daskperiment_local import LocalBackend

    class Client:
        path = tmp_path / "from-client"

    class Plugin:
        @hookimpl
        def make_backend(self, experiment_id, target):
            if isinstance(target, Client):
                return LocalBackend(experiment_id, target.path)
            return None

    plugin_manager.register(Plugin(), name="client")
    ex = daskperiment.Experiment("client", backend=Client())
    assert ex.backend.path == tmp_path / "from-client"
