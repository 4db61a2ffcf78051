"""Results and persisted results: stored without pickle when they can be, pickles signed (issue 15, items 19–21).

What backends do with the bytes is checked on every backend by ``SafeLoadingTests`` in the
conformance suite; this module checks the encodings and the key.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import daskperiment
from daskperiment import payloads
from daskperiment.errors import UntrustedPickleError

pa = pytest.importorskip("pyarrow", reason="pyarrow (requirements/dev.txt) stores pandas objects as Arrow IPC")


@pytest.mark.parametrize(("value", "encoding"), [
    ({"a": [1, 2.5, None, "x"]}, "json"),
    (np.arange(12, dtype="<i4").reshape(3, 4), "npy"),
    (np.zeros(3, dtype=[("x", "<f8"), ("n", "<i2")]), "npy"),
    (pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), "arrow"),
    (pd.DataFrame({"v": [0.5]}, index=pd.Index(["r"], name="row")), "arrow"),
    (pd.Series([1.5, 2.5], name="loss"), "arrow-series"),
    (pd.Series([1, 2]), "arrow-series"),
    (np.array([1, "a"], dtype=object), "pickle"),  # objects in an array: only pickle holds them
    (pd.Series([1, "a"]), "pickle"),  # Arrow cannot hold mixed objects
    ((1, 2), "pickle"),  # a tuple would come back from JSON as a list
    ({1, 2}, "pickle"),
])
def test_each_value_gets_the_safest_exact_encoding(value, encoding):
    got, body = payloads.encode(value)
    assert got == encoding
    back = payloads.decode(got, body, "x")
    if isinstance(value, (pd.DataFrame, pd.Series)):
        assert type(back) is type(value) and back.equals(value) and back.index.equals(value.index)
        assert getattr(back, "name", None) == getattr(value, "name", None)
    elif isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and back.shape == value.shape and (back == value).all()
    else:
        assert back == value and type(back) is type(value)


def test_records_and_files_say_how_results_are_stored(tmp_path):
    """The trial record names its result's encoding; a large result is a file named after it."""
    ex = daskperiment.Experiment("encodings", backend=tmp_path / "store")
    kind = ex.parameter("kind")

    @ex.persist
    def frame(kind):
        return pd.DataFrame({"x": np.arange(3)})

    @ex.result
    def result(df, kind):
        return {"plain": 1.5, "array": np.arange(20_000.0), "frame": df, "set": {1}}[kind]

    for value in ("plain", "array", "frame", "set"):
        ex.set_parameters(kind=value)
        result(frame(kind), kind).compute()
    records = ex.backend.load_trials()
    assert [r["result_encoding"] for r in records] == ["json", "npy", "arrow", "pickle"]
    assert records[0]["result_pickle"] is None and records[0]["result"] == 1.5
    assert (tmp_path / "store" / "results" / "encodings_2.npy").is_file()  # 160 kB: not in the database
    assert ex.get_result(2).tolist() == np.arange(20_000.0).tolist()
    assert ex.get_result(3).equals(pd.DataFrame({"x": np.arange(3)})) and ex.get_result(4) == {1}
    assert ex.backend.load_persisted("frame", 1).startswith(payloads.MAGIC + b"arrow\n")
    assert ex.get_history()["Result"][1] == 1.5


def test_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(payloads.KEY_ENV, "team key")
    encoding, body = payloads.encode({1})
    monkeypatch.setenv(payloads.KEY_ENV, "another key")
    with pytest.raises(UntrustedPickleError) as error:
        payloads.decode(encoding, body, "the result of trial 7")
    message = str(error.value)
    assert message.startswith("Refusing to unpickle the result of trial 7: its signature does not match")
    assert "Unpickling runs code" in message and "environment variable DASKPERIMENT_PICKLE_KEY" in message
    assert "If you trust whoever wrote this store, use their key" in message
    monkeypatch.setenv(payloads.KEY_ENV, "team key")
    assert payloads.decode(encoding, body, "x") == {1}


def test_the_key_file_is_created_once_readable_only_by_its_owner(tmp_path, monkeypatch):
    """Without the variable, a key file in the config directory: 0600, in a 0700 directory, and
    processes starting at once end up with one key."""
    monkeypatch.delenv(payloads.KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    code = "from daskperiment import payloads; print(payloads.pickle_key()[0].decode())"
    env = {k: v for k, v in os.environ.items() if k != payloads.KEY_ENV}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    path = tmp_path / "config" / "daskperiment" / "pickle.key"
    assert keys == {path.read_text().strip()} and len(keys.pop()) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert payloads.key_file() == path and payloads.pickle_key()[1] == f"the key file {path}"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_a_bare_pickle_is_never_loaded(tmp_path):
    """What ``get_persisted`` used to store (a bare cloudpickle) is refused before any byte is unpickled."""
    marker = tmp_path / "marker"

    class Planted:
        def __reduce__(self):
            return (pathlib.Path.write_text, (marker, "ran"))

    with pytest.raises(UntrustedPickleError, match="it is a bare pickle, not signed"):
        payloads.unpack(pickle.dumps(Planted()), "the persisted result of step 'x' in trial 1")
    with pytest.raises(UntrustedPickleError, match="its record holds a bare pickle"):
        payloads.decode_result({"trial_id": 1, "result_pickle": pickle.dumps(Planted()), "result_encoding": None})
    assert not marker.exists()


def test_an_unknown_encoding_is_an_error_not_a_guess():
    with pytest.raises(daskperiment.errors.PayloadError, match="unknown encoding 'yaml'"):
        payloads.unpack(payloads.MAGIC + b"yaml\na: 1", "the persisted result of step 'x' in trial 1")
