"""LocalBackend.read_only(): the dashboard's way in, which must never disturb the writer."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sqlite3
import tempfile
import threading
import time

import pytest

from daskperiment.errors import BackendError
from daskperiment_local import LocalBackend

START = {"parameters": {"a": 1}, "seed": 1, "started": 1.0, "code": None, "environment": None,
         "host": "h", "pid": 1, "sweep": None}
OUTCOME = {"finished": 2.0, "process_time": 1.0, "success": True, "result": 3, "result_type": "<class 'int'>"}


def _tree(path: pathlib.Path) -> dict[str, tuple[int, int]]:
    """Every file with its size and mtime, except SQLite's shared WAL index files, which any
    reader of a WAL database may create while the directory allows it (and removes after)."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in path.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def _written(path: pathlib.Path) -> LocalBackend:
    backend = LocalBackend("ro", path)
    backend.finish_trial(backend.start_trial(START), OUTCOME)
    backend.save_persisted("prep", 1, b"12345")
    backend.close()
    return backend


def test_unknown_experiment_creates_nothing(tmp_path):
    view = LocalBackend("nothing", tmp_path / "nothing").read_only()
    assert view.last_trial_id() == 0 and view.load_history()["trial_id"] == []
    assert view.experiment_ids() == []
    assert list(tmp_path.iterdir()) == []


def test_reading_changes_no_file(tmp_path):
    _written(tmp_path / "ro")
    before = _tree(tmp_path)
    view = LocalBackend("ro", tmp_path / "ro").read_only()
    assert view.load_trials()[0]["result"] == 3
    assert view.persisted_sizes(1, ["prep"]) == {"prep": 5}
    view.close()
    assert _tree(tmp_path) == before


def test_writes_through_a_view_are_refused(tmp_path):
    view = _written(tmp_path / "ro").read_only()
    with pytest.raises(BackendError, match="opened read-only"):
        view.start_trial(START)
    with pytest.raises(BackendError, match="opened read-only"):
        view.save_persisted("prep", 2, b"x")
    with pytest.raises(BackendError, match="opened read-only"):
        view.save_document("code", "d", {})
    assert view.last_trial_id() == 1


def test_a_writer_holding_a_write_transaction_is_not_blocked(tmp_path):
    """SQLite ``mode=ro`` on WAL: readers take no write lock, and are not blocked by one."""
    writer = _written(tmp_path / "ro")
    view = writer.read_only()
    assert view.last_trial_id() == 1
    db = writer._db()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO trials (parameters) VALUES ('{}')")
    started = time.perf_counter()
    assert view.last_trial_id() == 1  # the snapshot before the open transaction
    reader_seconds = time.perf_counter() - started
    done = threading.Event()
    threading.Thread(target=lambda: (view.load_history(), done.set())).start()
    assert done.wait(5)
    db.execute("COMMIT")
    assert view.last_trial_id() == 2
    assert writer.start_trial(START) == 3  # and the writer goes on while the view is open
    assert reader_seconds < 1


def test_old_database_without_new_columns(tmp_path):
    """A database from before the ``sweep`` column reads through a read-only view (no migration)."""
    path = tmp_path / "ro"
    path.mkdir()
    conn = sqlite3.connect(path / "ro.sqlite3")
    conn.execute("CREATE TABLE trials (trial_id INTEGER PRIMARY KEY, parameters TEXT, seed INTEGER, started REAL, "
                 "code TEXT, environment TEXT, host TEXT, pid INTEGER, finished REAL, process_time REAL, "
                 "success INTEGER, result TEXT, result_pickle BLOB, result_type TEXT, description TEXT, "
                 "traceback TEXT)")
    conn.execute("INSERT INTO trials (parameters, success, result) VALUES ('{\"a\": 1}', 1, '2')")
    conn.commit()
    conn.close()
    view = LocalBackend("ro", path).read_only()
    assert view.load_trials()[0]["sweep"] is None
    assert view.load_history()["sweep"] == [None]
    assert "sweep" not in {row[1] for row in sqlite3.connect(path / "ro.sqlite3").execute("PRAGMA table_info(trials)")}


def _read_in_unwritable_directory(path: pathlib.Path) -> tuple[list, bool]:
    """Read ``path`` where writes fail: as root (chmod does not stop root) a forked child drops
    to ``nobody``; otherwise the directory is simply made read-only."""
    def read() -> tuple[list, bool]:
        view = LocalBackend("ro", path).read_only()
        results = [r["result"] for r in view.load_trials()]
        try:
            (path / "probe").write_text("x")
            writable = True
        except OSError:
            writable = False
        return results, writable

    os.chmod(path, 0o555)
    try:
        if os.geteuid() != 0:
            return read()
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(reader)
            try:
                os.setgid(65534)
                os.setuid(65534)
                results, writable = read()
                os.write(writer, json.dumps([results, writable]).encode())
            except Exception as exc:
                os.write(writer, json.dumps(["error", repr(exc)]).encode())
            finally:
                os._exit(0)
        os.close(writer)
        with os.fdopen(reader) as pipe:
            answer = pipe.read()
        os.waitpid(pid, 0)
        results, writable = json.loads(answer)
        assert results != "error", writable
        return results, writable
    finally:
        os.chmod(path, 0o755)


@pytest.mark.parametrize("writer_open", [False, True], ids=["closed", "writer-open"])
def test_read_only_directory(writer_open):
    """Reading works where nothing can be written (today's bug: "attempt to write a readonly
    database"), whether or not a writer has the database open (WAL files present)."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="daskperiment-ro-"))  # not under pytest's 0700 tmp
    try:
        os.chmod(root, 0o755)
        path = root / "ro"
        writer = _written(path)
        if writer_open:
            writer.last_trial_id()
        for item in path.rglob("*"):
            os.chmod(item, 0o755 if item.is_dir() else 0o644)
        results, writable = _read_in_unwritable_directory(path)
        assert not writable, "the test could not make the directory read-only"
        assert results == [3]
        writer.close()
    finally:
        shutil.rmtree(root)
