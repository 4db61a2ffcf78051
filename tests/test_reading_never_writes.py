"""Reading never writes (issue 15, item 13): history, metrics, code, environment, results,
persisted results and the diff of two trials read from a store nobody may write, and reading an
unknown experiment creates nothing.

As root, permissions do not stop writes, so the local store is checked two ways: every file's
name, size and modification time are unchanged after a reader process has read everything
(no file created, none touched: SQLite's ``-wal``/``-shm`` included), and, where ``unshare -m``
is allowed, the reader runs with the store bind-mounted read-only. Redis and MongoDB readers
are checked to create no key or collection for an unknown experiment.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import daskperiment

READER = textwrap.dedent("""
    import sys, pathlib, daskperiment
    store = pathlib.Path(sys.argv[1])
    ex = daskperiment.Experiment("readonly", backend=store)
    assert ex.trial_id == int(sys.argv[2]), ex.trial_id
    history = ex.get_history(verbose=True)
    assert history["Success"].tolist()[:2] == [True, True], history
    assert ex.get_parameters(trial_id=2) == {"n": 20000}
    assert ex.load_metric("loss", trial_id=[1, 2])[2].tolist() == [2.0, 1.0]
    assert "def result" in ex.get_code(trial_id=1)
    assert ex.get_environment(trial_id=1)
    assert ex.get_persisted("prepare", 2).shape == (20000,)
    assert ex.get_result(2).sum() == 20000 and ex.get_result(1).shape == (3,)
    assert "n" in ex.diff(1, 2).parameters
    repr(ex)
    unknown = daskperiment.Experiment("nobody", backend=store / "elsewhere")
    assert unknown.trial_id == 0 and unknown.get_history().empty
    print("READ")
""")


def _snapshot(root):
    """Every path under ``root`` with its size and modification time (ns)."""
    return {path: (stat.st_size, stat.st_mtime_ns) for path, stat in
            ((os.path.join(d, name), os.stat(os.path.join(d, name))) for d, dirs, files in os.walk(root)
             for name in dirs + files)}


@pytest.fixture
def store(tmp_path):
    """A store written by a process that has ended (as a reader usually finds it)."""
    store = tmp_path / "store"
    script = tmp_path / "write.py"
    script.write_text(textwrap.dedent("""
        import sys, numpy as np, daskperiment
        ex = daskperiment.Experiment("readonly", backend=__import__("pathlib").Path(sys.argv[1]))
        n = ex.parameter("n")

        @ex.persist
        def prepare(n):
            return np.ones(n)

        @ex.result
        def result(x):
            ex.save_metric("loss", epoch=0, value=2.0)
            ex.save_metric("loss", epoch=1, value=1.0)
            return x  # 160 kB when n = 20000: a result file

        for value in (3, 20000):
            ex.set_parameters(n=value)
            result(prepare(n)).compute()
    """))
    subprocess.run([sys.executable, str(script), str(store)], check=True, capture_output=True)
    return store


def test_reading_everything_changes_no_file(store):
    before = _snapshot(store.parent)
    proc = subprocess.run([sys.executable, "-c", READER, str(store), "2"], capture_output=True, text=True)
    assert proc.stdout.strip() == "READ", proc.stderr
    assert _snapshot(store.parent) == before


@pytest.fixture
def killed_store(store):
    """A copy of ``store`` whose writer was killed mid-trial: its ``-wal`` and ``-shm`` are left behind."""
    killed = store.parent / "killed"
    shutil.copytree(store, killed)
    code = ("import sys, pathlib, daskperiment; b = daskperiment.Experiment('readonly', "
            "backend=pathlib.Path(sys.argv[1])).backend; b.start_trial({'parameters': {'n': 1}, 'seed': 1}); "
            "print('STARTED', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(killed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "STARTED"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert (killed / "readonly.sqlite3-wal").exists()
    return killed


def test_reading_a_store_left_by_a_killed_writer_changes_no_data(killed_store):
    """The killed writer's last transactions are in its ``-wal``: readers read them where they are. The
    one file a reader then touches is SQLite's ``-shm`` index (no data: how readers take their read
    marks while a writer might run); nothing is created."""
    before = _snapshot(killed_store)
    proc = subprocess.run([sys.executable, "-c", READER, str(killed_store), "3"], capture_output=True, text=True)
    assert proc.stdout.strip() == "READ", proc.stderr
    after = _snapshot(killed_store)
    shm = str(killed_store / "readonly.sqlite3-shm")
    assert after.keys() == before.keys() and after.pop(shm)[0] == before.pop(shm)[0] and after == before


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind -o ro / /mnt 2>/dev/null || "
                            "mount --bind -o ro /tmp /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="unshare -m with a read-only bind mount is not allowed here "
                    "(needs CAP_SYS_ADMIN); test_reading_everything_changes_no_file checks the same guarantee")
@pytest.mark.parametrize("left_by", ["clean", "killed"])
def test_reading_from_a_read_only_mount(request, left_by):
    """The store mounted read-only (the kernel refuses every write): everything still reads, also the
    last transactions of a killed writer (SQLite keeps the WAL index in memory then)."""
    store, last = (request.getfixturevalue("store"), 2) if left_by == "clean" else \
        (request.getfixturevalue("killed_store"), 3)
    command = f'mount --bind -o ro "{store}" "{store}" && exec "{sys.executable}" -c "$0" "{store}" {last}'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", command, READER], capture_output=True, text=True)
    assert proc.stdout.strip() == "READ", proc.stderr


def test_an_unknown_local_experiment_creates_nothing(tmp_path):
    ex = daskperiment.Experiment("nobody", backend=tmp_path / "cache")
    assert ex.trial_id == 0 and ex.get_history().empty
    with pytest.raises(daskperiment.errors.DaskperimentError):
        ex.get_parameters(trial_id=1)
    with pytest.raises(daskperiment.errors.DaskperimentError):
        ex.load_metric("loss", trial_id=1)
    assert not (tmp_path / "cache").exists()


def test_the_default_backend_reads_without_creating_its_directory(tmp_path):
    daskperiment.Experiment("nobody_default").get_history()
    assert not (tmp_path / "daskperiment_cache").exists()
    assert np.array_equal(os.listdir(tmp_path), [])


def test_a_database_another_process_is_creating_reads_as_empty(tmp_path):
    """Its file exists, its tables not yet (another process is initialising it): no trials, no error."""
    store = tmp_path / "store"
    store.mkdir()
    db = sqlite3.connect(store / "racing.sqlite3")
    db.execute("PRAGMA user_version = 1")  # writes the file's header, creates no table
    db.commit()
    db.close()
    ex = daskperiment.Experiment("racing", backend=store)
    assert ex.trial_id == 0 and ex.get_history().empty and ex.backend.read_only().metric_keys() == []
