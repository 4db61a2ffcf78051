"""The backend registry's contract: registration through the hook, masking, install hints."""

from __future__ import annotations

import pytest

import daskperiment
from daskperiment import hookimpl
from daskperiment.backends import BackendRegistry, mask_uri
from daskperiment.plugins import PluginHost, make_plugin_manager


@pytest.mark.parametrize(("uri", "masked"), [
    ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
    ("redis://:secret@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
    ("mongodb://u:pw@h1:1,h2:2/db?replicaSet=rs", "mongodb://u:***@h1:1,h2:2/db?replicaSet=rs"),
    ("postgresql://User:pw@DB.Example.com/x", "postgresql://User:***@DB.Example.com/x"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("redis://user@host/0", "redis://user@host/0"),
])
def test_mask_uri_keeps_what_was_written_but_the_password(uri, masked):
    assert mask_uri(uri) == masked


def test_multi_host_uri_without_its_plugin_names_the_extra():
    pm = make_plugin_manager(blocked=("mongo",))
    with pytest.raises(daskperiment.UnknownBackendError, match=r"daskperiment\[mongo\]") as info:
        PluginHost(pm).make_backend("ex", "mongodb://u:pw@h1:1,h2:2/db")
    assert "pw" not in str(info.value) and "h1:1,h2:2" in str(info.value)


def test_register_accepts_extra_as_documented():
    from daskperiment_local import LocalBackend

    class Memory(LocalBackend):
        pass

    class Plugin:
        @hookimpl
        def register_backends(self, register):
            register("memx", Memory, extra="memx-extra")

    pm = make_plugin_manager()
    pm.register(Plugin(), name="memx")
    registry = PluginHost(pm).backends
    assert registry.get("memx") is Memory
    assert registry.extra("memx") == "memx-extra"
    assert registry.extra("redis") == "redis"


def test_registry_is_rebuilt_when_plugins_change():
    from daskperiment_local import LocalBackend

    class Plugin:
        @hookimpl
        def register_backends(self, register):
            register("later", LocalBackend)

    pm = make_plugin_manager()
    host = PluginHost(pm)
    assert host.backends.get("later") is None
    pm.register(Plugin(), name="later")
    assert host.backends.get("later") is LocalBackend


def test_registry_has_no_global_state():
    first, second = BackendRegistry(), BackendRegistry()
    from daskperiment_local import LocalBackend

    first.register("file", LocalBackend, "local")
    assert second.schemes == []


def test_plugin_distributions_are_not_stored_on_pluggy():
    pm = make_plugin_manager()
    assert not [name for name in vars(pm) if name.startswith("_daskperiment")]
    rows = {row["name"]: row for row in PluginHost(pm).list_plugins()}
    assert rows["local"]["distribution"] == "daskperiment-local"
