"""Collector checks: one set of tests every environment collector passes.

Use it from a collector's own test module::

    import daskperiment_collect_cpu
    from daskperiment.testing.collectors import CollectorTests


    class TestCpuCollector(CollectorTests):
        plugin = daskperiment_collect_cpu
        entry_point = "cpu"
        sections = ("cpu",)

The collector runs twice, in a fresh temporary working directory; override the
class-scoped ``collector_setup`` fixture to prepare what it inspects there (a
git repository, fake tools on ``PATH``). Each test's docstring names the
guarantee it protects.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pathlib
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest


@dataclass
class CollectorRun:
    """One call of ``collect_environment`` and what it did around it."""

    result: Any
    seconds: float
    output: str
    changed_state: list[str]
    connections: list[Any]


@dataclass(frozen=True)
class _Raised:
    """A fingerprint call that raised, kept for the report."""

    error: str


def _global_state() -> dict[str, Any]:
    numpy = sys.modules.get("numpy")
    np_state = None
    if numpy is not None:
        name, keys, *rest = numpy.random.get_state()
        np_state = (name, keys.tobytes(), *rest)
    return {
        "working directory": os.getcwd(),
        "files in the working directory": sorted(os.listdir(".")),
        "os.environ": dict(os.environ),
        "sys.path": list(sys.path),
        "random state": random.getstate(),
        "numpy global random state": np_state,
        "logging handlers": [list(logging.getLogger(name).handlers) for name in ("", "daskperiment")],
        "sys.stdout/sys.stderr": (sys.stdout, sys.stderr),
    }


@contextlib.contextmanager
def _chdir(path: Any) -> Iterator[None]:
    """``contextlib.chdir``, which Python 3.10 lacks."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _captured_output(out: list[str]) -> Iterator[None]:
    """Collect what is written to stdout/stderr, by Python code or by subprocesses (fd 1 and 2)."""
    text = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as raw:
        try:
            os.dup2(raw.fileno(), 1)
            os.dup2(raw.fileno(), 2)
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            raw.seek(0)
            out.append(text.getvalue() + raw.read().decode(errors="replace"))


@contextlib.contextmanager
def _no_network(attempts: list[Any]) -> Iterator[None]:
    """Refuse (and record) every connection and name lookup made from this process."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network access is not allowed in an environment collector")

    with pytest.MonkeyPatch.context() as mp:
        for name in ("connect", "connect_ex"):
            mp.setattr(socket.socket, name, refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield


@contextlib.contextmanager
def _no_subprocess(started: list[Any]) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        started.append(next((arg for arg in args if isinstance(arg, (str, list, tuple))), None))  # the command
        raise OSError("a fingerprint must not start processes")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "__init__", refuse)
        mp.setattr(os, "system", refuse)
        yield


class CollectorTests:
    """Subclass and set :attr:`plugin` (the module or object implementing the hook)."""

    #: the plugin: a module or object with a ``collect_environment`` hook implementation
    plugin: ClassVar[Any] = None
    #: its name in the ``daskperiment`` entry-point group, when it is installed as a plugin
    entry_point: ClassVar[str | None] = None
    #: section names it must return (in the prepared environment)
    sections: ClassVar[tuple[str, ...]] = ()
    #: a generous budget per call, far below the host's collector timeout: it guards against
    #: a collector that waits on something slow (a network, a hung tool), it is not a benchmark
    max_seconds: ClassVar[float] = 10.0

    @pytest.fixture(scope="class")
    @classmethod
    def collector_dir(cls, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
        """The working directory during collection: fresh, empty and private to this class."""
        return tmp_path_factory.mktemp("collector")

    @pytest.fixture(scope="class")
    @classmethod
    def collector_setup(cls, collector_dir: pathlib.Path) -> object:
        """Override to prepare what the collector inspects (class-scoped, a classmethod; may yield)."""
        return None

    @pytest.fixture(scope="class")
    @classmethod
    def runs(cls, collector_dir: pathlib.Path, collector_setup: object) -> dict[str, Any]:
        """Two collections, with fingerprints taken before, between and after them."""
        fingerprint = getattr(cls.plugin, "environment_fingerprint", None)
        record: dict[str, Any] = {"calls": [], "fingerprints": [], "fingerprint_processes": []}

        def take_fingerprint() -> None:
            if fingerprint is not None:
                with _no_subprocess(record["fingerprint_processes"]):
                    try:
                        record["fingerprints"].append(fingerprint())
                    except Exception as exc:  # reported by the fingerprint test, not as a fixture error
                        record["fingerprints"].append(_Raised(repr(exc)))

        with _chdir(collector_dir):
            take_fingerprint()
            for _ in range(2):
                record["calls"].append(cls._call())
                take_fingerprint()
        return record

    @classmethod
    def _call(cls) -> CollectorRun:
        output: list[str] = []
        connections: list[Any] = []
        before = _global_state()
        with _captured_output(output), _no_network(connections):
            start = time.perf_counter()
            result = cls.plugin.collect_environment()
            seconds = time.perf_counter() - start
        after = _global_state()
        changed = [key for key in before if before[key] != after[key]]
        return CollectorRun(result, seconds, output[0], changed, connections)

    # ---- the hook --------------------------------------------------------------
    def test_implements_the_hook(self) -> None:
        """``collect_environment`` is marked with ``@daskperiment.hookimpl``, so pluggy calls it."""
        from daskperiment.hookspecs import PROJECT_NAME

        hook = getattr(self.plugin, "collect_environment", None)
        assert hook is not None, "the plugin has no collect_environment function"
        assert hasattr(hook, f"{PROJECT_NAME}_impl"), "decorate collect_environment with @daskperiment.hookimpl"

    def test_is_installed_under_its_entry_point(self) -> None:
        """``pip install`` is enough: the entry point loads this very plugin."""
        if self.entry_point is None:
            pytest.skip("not an installed plugin (entry_point is None)")
        from importlib import metadata

        from daskperiment.plugins import ENTRY_POINT_GROUP

        found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == self.entry_point]
        assert len(found) == 1, f"entry point {self.entry_point!r} in group {ENTRY_POINT_GROUP!r}: {found}"
        assert found[0].load() is self.plugin

    # ---- what it returns ----------------------------------------------------------
    def test_returns_named_sections(self, runs: dict[str, Any]) -> None:
        """A mapping of section name to value (or ``None``), naming the expected sections."""
        for call in runs["calls"]:
            result = call.result
            assert result is None or isinstance(result, dict), type(result)
            assert all(isinstance(name, str) and name for name in (result or {}))
            missing = set(self.sections) - set(result or {})
            assert not missing, f"sections {sorted(missing)} missing from {sorted(result or {})}"

    def test_sections_are_plain_json(self, runs: dict[str, Any]) -> None:
        """Each section is text or JSON data that survives a round trip unchanged (no NaN, no tuples)."""
        for name, value in (runs["calls"][0].result or {}).items():
            assert isinstance(value, (str, dict, list)), f"section {name!r} is a {type(value).__name__}"
            assert json.loads(json.dumps(value, allow_nan=False)) == value, f"section {name!r} is not plain JSON"

    def test_is_stable(self, runs: dict[str, Any]) -> None:
        """Two calls give equal sections: a volatile value would warn about a change at every trial."""
        first, second = (call.result for call in runs["calls"])
        assert first == second

    def test_is_fast(self, runs: dict[str, Any]) -> None:
        """Each call returns within :attr:`max_seconds` (a guard against hangs, not a benchmark)."""
        for call in runs["calls"]:
            assert call.seconds <= self.max_seconds, f"{call.seconds:.2f} s"

    # ---- what it leaves alone ---------------------------------------------------------
    def test_uses_no_network(self, runs: dict[str, Any]) -> None:
        """No connection or name lookup: collection must work offline and never wait on a network."""
        for call in runs["calls"]:
            assert not call.connections, call.connections

    def test_prints_nothing(self, runs: dict[str, Any]) -> None:
        """Nothing reaches stdout/stderr, not even from a subprocess: log with ``logging`` instead."""
        for call in runs["calls"]:
            assert call.output == "", call.output

    def test_has_no_global_side_effects(self, runs: dict[str, Any]) -> None:
        """Working directory and its files, environment, ``sys.path``, global RNGs, logging: untouched."""
        for call in runs["calls"]:
            assert not call.changed_state, f"changed: {call.changed_state}"

    # ---- when to collect again ----------------------------------------------------------
    def test_fingerprint_is_cheap_and_stable(self, runs: dict[str, Any]) -> None:
        """``environment_fingerprint()`` starts no process and does not move because of a collection."""
        if not hasattr(self.plugin, "environment_fingerprint"):
            pytest.skip("no environment_fingerprint: collected once per process")
        assert not runs["fingerprint_processes"], runs["fingerprint_processes"]
        assert not [fp for fp in runs["fingerprints"] if isinstance(fp, _Raised)], runs["fingerprints"]
        first, *others = runs["fingerprints"]
        assert all(other == first for other in others), runs["fingerprints"]


__all__ = ["CollectorRun", "CollectorTests"]
