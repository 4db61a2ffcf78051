"""What lands in Redis: the documented keys, plain data, and bounded command counts."""

from __future__ import annotations

import json
import pathlib
import re

import daskperiment
import numpy as np
import pytest
from daskperiment import payloads
from daskperiment_redis import RedisBackend

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
#: the only places pickles may live (signed): persisted step results and non-plain trial results
PAYLOAD_KEYS = ("persist:", "persist_chunks:", "trial:result_pickle", "result_chunks:")
#: documented keys that exist only while a write is under way
TRANSIENT = ("partial:",)


def run_everything(experiment_id: str, uri: str) -> daskperiment.Experiment:
    """A trial of every kind: persisted steps (small and chunked), metric, non-plain results
    (small and chunked), failure."""
    ex = daskperiment.Experiment(experiment_id, backend=uri)
    ex.backend.value_chunk_bytes = 1000
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        return {"a": a}

    @ex.persist
    def big(a):
        return np.arange(1000.0)  # 8 kB: chunked

    @ex.result
    def score(p, big):
        ex.save_metric("loss", epoch=0, value=0.5)
        return {1 / p["a"]} if p["a"] < 3 else np.zeros(500)  # a set is pickled, the array chunked

    for value in (2, 3):
        ex.set_parameters(a=value)
        score(prepare(a), big(a)).compute(seed=3)
    ex.set_parameters(a=0)
    with pytest.raises(ZeroDivisionError):
        score(prepare(a), big(a)).compute(seed=3)
    ex.backend.beat([1], 1_700_000_000.0)  # trials this short end before their first heartbeat
    return ex


def stored(client, experiment_id: str) -> dict[str, tuple[str, list[bytes]]]:
    """Key (without the prefix) → (type, every stored value) of one experiment."""
    prefix = f"daskperiment:{{{experiment_id}}}:"
    read = {"string": lambda key: [client.get(key)], "hash": lambda key: list(client.hgetall(key).values()),
            "list": lambda key: client.lrange(key, 0, -1), "set": lambda key: list(client.smembers(key)),
            "zset": lambda key: client.zrange(key, 0, -1)}
    out = {}
    for key in client.scan_iter(match=prefix + "*"):
        kind = client.type(key).decode()
        out[key.decode()[len(prefix):]] = (kind, read[kind](key))
    return out


def documented_patterns() -> dict[str, str]:
    """Key pattern → Redis type, from the README's layout table."""
    rows = re.findall(r"^\|[^|]*\| ([^|]+?) \| `P:([^`]+)` \|", README.read_text(), re.MULTILINE)
    assert len(rows) >= 10, "layout table not found in README"
    return {".+".join(re.escape(part) for part in re.split(r"<[^>]+>", key)): kind.split(",")[0].split(" ")[0]
            for kind, key in rows}


def test_keys_match_the_documented_layout(redis_uri, raw_redis):
    experiment_id = "layout"
    run_everything(experiment_id, redis_uri)
    keys = stored(raw_redis, experiment_id)
    patterns = documented_patterns()
    types = {"string": "string", "hash": "hash", "list": "list", "set": "set", "zset": "sorted"}
    for key, (kind, _) in keys.items():
        matching = [p for p in patterns if re.fullmatch(p, key)]
        assert matching, f"undocumented key {key!r}"
        assert patterns[matching[0]] == types[kind], (key, kind)
    unused = [p for p in patterns if not any(re.fullmatch(p, key) for key in keys)]
    assert [p.replace("\\", "") for p in unused] == [f"{TRANSIENT[0]}.+"], f"documented but never written: {unused}"


def test_metadata_is_plain_json_never_pickle(redis_uri, raw_redis):
    """A shared server must not be a way to run code: only results are pickled."""
    experiment_id = "plain"
    run_everything(experiment_id, redis_uri)
    for key, (_, values) in stored(raw_redis, experiment_id).items():
        if key.startswith(("persist_chunks:", "result_chunks:")):
            values = [b"".join(values)]
        for value in values:
            if key.startswith(PAYLOAD_KEYS):
                assert value.startswith((payloads.MAGIC, b"\x93NUMPY")) or key.startswith("trial:result_pickle")
                continue
            assert not value.startswith(b"\x80"), f"{key} holds a pickle"
            if key.startswith(("trial:start", "trial:outcome", "doc:")):
                assert isinstance(json.loads(value), dict), key
            elif key.startswith("metric:"):
                assert value[:8] in (b"<i8<f8\0\0", b"<i8<i8\0\0") and len(value) == 8 + 16  # epochs, values
            else:
                value.decode("utf-8")  # ids, names, hashes, tracebacks: text
    start = json.loads(raw_redis.hget(f"daskperiment:{{{experiment_id}}}:trial:start", 1))
    assert start["parameters"] == {"a": 2} and start["seed"] == 3
    ex = daskperiment.Experiment(experiment_id, backend=redis_uri)
    assert ex.get_result(1) == {0.5} and ex.get_result(2).tolist() == [0.0] * 500
    assert ex.get_persisted("big", 2).tolist() == np.arange(1000.0).tolist()


def test_metric_chunk_is_raw_numbers(redis_uri, raw_redis):
    experiment_id = "chunk"
    RedisBackend(experiment_id, redis_uri).save_metrics(1, "m", np.array([0.5, 1.5]), np.array([1.0, 2.0]))
    (chunk,) = raw_redis.lrange(f"daskperiment:{{{experiment_id}}}:metric:1:m", 0, -1)
    assert chunk[:8] == b"<f8<f8\0\0"  # the epochs' dtype, then the values'
    assert np.frombuffer(chunk[8:], "<f8").tolist() == [0.5, 1.5, 1.0, 2.0]


def test_metric_chunks_written_before_integer_values_were_kept_still_read(redis_uri, raw_redis):
    """A chunk with only the epochs' dtype in its header (float64 values) reads as before."""
    experiment_id = "old_chunk"
    old = b"<i8\0\0\0\0\0" + np.array([3], "<i8").tobytes() + np.array([0.5], "<f8").tobytes()
    raw_redis.rpush(f"daskperiment:{{{experiment_id}}}:metric:1:m", old)
    series = RedisBackend(experiment_id, redis_uri).load_metrics("m", [1])[1]
    assert series.epochs.tolist() == [3] and series.values.tolist() == [0.5] and series.values.dtype == np.float64


def test_history_is_a_bounded_number_of_commands_without_keys_or_scan(make_server):
    """12,000 trials load in three round trips whose commands grow with batches of 5,000 ids;
    KEYS and SCAN are never used."""
    server = make_server()
    backend = RedisBackend("bounded", server.uri)
    client = server.client()
    start = json.dumps({"parameters": {"a": 1}, "seed": 1})  # 12,000 trials written the documented way
    client.hset("daskperiment:{bounded}:trial:start", mapping={i: start for i in range(1, 12_001)})
    client.set("daskperiment:{bounded}:trial_id", 12_000)
    backend.finish_trial(7, {"success": True, "result": 1})
    backend.load_history()  # loads the read script once (SCRIPT LOAD)
    client.config_resetstat()
    history = backend.load_history()
    assert len(history["trial_id"]) == 12_000 and history["success"][6] is True
    backend.load_trials()
    stats = client.info("commandstats")
    assert stats["cmdstat_get"]["calls"] == 2  # the counter, once per call
    assert stats["cmdstat_script"]["calls"] == 2  # redis-py's SCRIPT EXISTS, once per pipeline
    assert stats["cmdstat_evalsha"]["calls"] == 2 * 3 + 2 * 3  # JSON columns: 2 per batch of 5,000 ids
    assert stats["cmdstat_hmget"]["calls"] == 2 * 3 + 5 * 3  # inside those scripts, + tracebacks, pickles, beats
    assert not any(name in stats for name in ("cmdstat_keys", "cmdstat_scan", "cmdstat_hgetall"))
    client.close()


def test_experiments_share_a_database_safely(redis_uri):
    first, second = "one", "two"
    run_everything(first, redis_uri)
    ex = daskperiment.Experiment(second, backend=redis_uri)
    assert ex.trial_id == 0 and ex.get_history().empty
    assert daskperiment.Experiment(first, backend=redis_uri).trial_id == 3


def test_an_id_without_its_record_is_skipped(redis_uri, raw_redis):
    """Should the server fail between INCR and HSET (out of memory mid-script), the gap reads as absent."""
    backend = RedisBackend("gap", redis_uri)
    backend.start_trial({"seed": 1})
    raw_redis.incr("daskperiment:{gap}:trial_id")  # id 2 allocated, its record never written
    backend.start_trial({"seed": 3})
    assert [r["trial_id"] for r in backend.load_trials()] == [1, 3]
    history = backend.load_history()
    assert history["trial_id"] == [1, 3] and history["seed"] == [1, 3]
    assert backend.load_trials([2]) == []
