"""The environment cache: slow collectors keep their last answer under a key, safely."""

from __future__ import annotations

import json
import threading

import pytest

from daskperiment import collector_cache
from daskperiment.collector_cache import ENV_CACHE_DIR, cached_sections


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(ENV_CACHE_DIR, str(folder))
    return folder


def counting(sections):
    calls = []

    def collect():
        calls.append(1)
        return sections

    return collect, calls


def test_second_collection_with_the_same_key_is_served_from_disk(cache):
    collect, calls = counting({"cpu": {"brand": "x"}})
    assert cached_sections("cpu", ["boot-1"], collect) == {"cpu": {"brand": "x"}}
    assert cached_sections("cpu", ["boot-1"], collect) == {"cpu": {"brand": "x"}}
    assert len(calls) == 1
    (entry,) = cache.iterdir()
    assert entry.name.startswith("cpu-") and json.loads(entry.read_text()) == {"cpu": {"brand": "x"}}


def test_another_key_collects_again(cache):
    collect, calls = counting({"cpu": {"brand": "x"}})
    cached_sections("cpu", ["boot-1"], collect)
    cached_sections("cpu", ["boot-2"], collect)
    cached_sections("numpy", ["boot-1"], collect)
    assert len(calls) == 3 and len(list(cache.iterdir())) == 3


def test_errors_are_never_kept(cache):
    collect, calls = counting({"cpu": {"error": "python timed out after 20 s"}})
    cached_sections("cpu", ["k"], collect)
    cached_sections("cpu", ["k"], collect)
    assert len(calls) == 2 and not cache.exists()


def test_no_key_means_no_caching(cache):
    collect, calls = counting({"cpu": {}})
    cached_sections("cpu", None, collect)
    cached_sections("cpu", None, collect)
    assert len(calls) == 2 and not cache.exists()


def test_an_empty_variable_turns_the_cache_off(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CACHE_DIR, "")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    collect, calls = counting({"cpu": {}})
    cached_sections("cpu", ["k"], collect)
    cached_sections("cpu", ["k"], collect)
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_default_folder_follows_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_CACHE_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert collector_cache.cache_dir() == tmp_path / "xdg" / "daskperiment"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert collector_cache.cache_dir() == tmp_path / ".cache" / "daskperiment"


def test_a_torn_entry_is_collected_again_and_replaced(cache):
    collect, calls = counting({"cpu": {"brand": "x"}})
    cached_sections("cpu", ["k"], collect)
    (entry,) = cache.iterdir()
    entry.write_text('{"cpu": {"bra')
    assert cached_sections("cpu", ["k"], collect) == {"cpu": {"brand": "x"}}
    assert len(calls) == 2 and json.loads(entry.read_text()) == {"cpu": {"brand": "x"}}


def test_an_unwritable_path_only_means_collecting_again(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(ENV_CACHE_DIR, str(blocker / "cache"))
    collect, calls = counting({"cpu": {}})
    assert cached_sections("cpu", ["k"], collect) == {"cpu": {}}
    assert cached_sections("cpu", ["k"], collect) == {"cpu": {}}
    assert len(calls) == 2 and blocker.read_text() == "not a folder"


def test_concurrent_writers_leave_one_whole_entry(cache):
    results = []

    def worker(i):
        results.append(cached_sections("numpy", ["k"], lambda: {"numpy": {"config": "x" * 100_000}}))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r == {"numpy": {"config": "x" * 100_000}} for r in results)
    assert [p.name.startswith("numpy-") for p in cache.iterdir()] == [True]  # no temp files left


def test_installed_distributions_names_this_environment():
    names = collector_cache.installed_distributions()
    assert any(name.lower().startswith(("pandas-", "pandas.")) for name in names)
    assert names == sorted(names)


def test_boot_id_is_stable_within_a_boot():
    assert collector_cache.boot_id() == collector_cache.boot_id()
