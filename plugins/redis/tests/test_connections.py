"""Every way to name a server: URIs (redis://, rediss://, unix://, passwords), pools, clients."""

from __future__ import annotations

import pickle
import subprocess
import sys

import daskperiment
import pytest
import redis
from daskperiment.plugins import get_backend_registry
from daskperiment.errors import BackendError
from daskperiment_redis import RedisBackend


def run_quickstart(experiment_id: str, backend) -> daskperiment.Experiment:
    """Two trials of a small experiment, with a metric and a persisted step."""
    ex = daskperiment.Experiment(experiment_id, backend=backend)
    a = ex.parameter("a")

    @ex.persist
    def double(a):
        return 2 * a

    @ex.result
    def score(x):
        ex.save_metric("m", epoch=0, value=x)
        return x + 1

    for value in (1, 2):
        ex.set_parameters(a=value)
        score(double(a)).compute(seed=1)
    return ex


def check_quickstart(ex: daskperiment.Experiment) -> None:
    history = ex.get_history()
    assert list(history.index) == [1, 2] and list(history["Result"]) == [3, 5]
    assert ex.get_persisted("double", 2) == 4
    assert list(ex.load_metric("m", [1, 2]).iloc[0]) == [2.0, 4.0]


def test_schemes_are_registered():
    registry = get_backend_registry()
    assert {registry.get(s) for s in ("redis", "rediss", "unix")} == {RedisBackend}


def test_redis_uri(redis_uri):
    ex = run_quickstart("by_uri", redis_uri)
    assert isinstance(ex.backend, RedisBackend)
    assert repr(ex.backend) == f"RedisBackend({redis_uri!r})"
    check_quickstart(ex)


def test_password_in_uri_is_used_and_masked(make_server):
    server = make_server(password="s3cr:t/pw")
    ex = run_quickstart("secured", server.uri)
    check_quickstart(ex)
    shown = repr(ex.backend)
    assert "s3cr" not in shown and "s3cr" not in repr(ex)
    assert shown == f"RedisBackend('redis://:***@127.0.0.1:{server.port}/0')"


def test_wrong_password_names_the_uri_and_the_fix(make_server):
    server = make_server(password="right")
    uri = f"redis://:wrong-pw@127.0.0.1:{server.port}/0"
    with pytest.raises(daskperiment.errors.BackendUnavailableError) as info:
        daskperiment.Experiment("denied", backend=uri)
    message = str(info.value)
    assert f"redis://:***@127.0.0.1:{server.port}/0" in message
    assert "authentication failed" in message and "password" in message
    assert "wrong-pw" not in message


def test_missing_password_is_an_authentication_error(make_server):
    server = make_server(password="right")
    with pytest.raises(daskperiment.errors.BackendUnavailableError, match="authentication failed"):
        RedisBackend("x", f"redis://127.0.0.1:{server.port}/0").last_trial_id()


def test_unix_socket_uri(make_server):
    server = make_server(unix_socket=True, password="pw")
    ex = run_quickstart("over_unix", server.unix_uri)
    check_quickstart(ex)
    assert repr(ex.backend) == f"RedisBackend('unix://:***@{server.socket_path}?db=0')"


def test_rediss_uri_is_parsed_for_tls():
    """TLS is parsed into an SSL connection pool (the bundled test server has no TLS to connect to)."""
    uri = "rediss://alice:t0p@redis.example.com:6380/2?ssl_cert_reqs=none"
    backend = RedisBackend("tls", uri)
    assert backend.uri == "rediss://alice:***@redis.example.com:6380/2?ssl_cert_reqs=none"
    clone = pickle.loads(pickle.dumps(backend))
    pool = clone._spec.build_pool()
    assert issubclass(pool.connection_class, redis.SSLConnection)
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.example.com", 6380, 2)
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_cert_reqs"]) == ("alice", "t0p", "none")
    assert kwargs["socket_connect_timeout"] == 5.0  # our defaults: unreachable hosts fail fast,
    assert kwargs["socket_timeout"] == 8.0  # and a frozen server within 8 s


def test_uri_options_override_our_defaults():
    pool = RedisBackend("x", "redis://h:1/0?socket_connect_timeout=2.5")._spec.build_pool()
    assert pool.connection_kwargs["socket_connect_timeout"] == 2.5


@pytest.mark.parametrize(("uri", "shown"), [
    ("unix:///tmp/redis.sock?db=1&password=hush", "unix:///tmp/redis.sock?db=1&password=***"),
    ("redis://:p@ss@[::1]:6390/0", "redis://:***@[::1]:6390/0"),
    ("redis://Alice:hush@Redis.Example:6390/3", "redis://Alice:***@Redis.Example:6390/3"),
    ("rediss://redis.example:6390", "rediss://redis.example:6390"),
])
def test_passwords_are_masked_and_the_rest_kept(uri, shown):
    assert RedisBackend("x", uri).uri == shown


def test_other_schemes_are_refused():
    with pytest.raises(BackendError, match="redis://, rediss:// or unix://"):
        RedisBackend("x", "http://example.com")


def test_connection_pool(redis_uri):
    pool = redis.ConnectionPool.from_url(redis_uri)
    ex = run_quickstart("by_pool", pool)
    assert repr(ex.backend) == f"RedisBackend({redis_uri!r})"
    check_quickstart(ex)
    clone = pickle.loads(pickle.dumps(ex.backend))  # rebuilt from the pool's connection arguments
    assert clone.last_trial_id() == 2 and clone.uri == ex.backend.uri
    ex.backend.close()
    assert redis.Redis(connection_pool=pool).ping()  # closing the backend leaves the user's pool alone


def test_connection_pool_with_password_and_decoded_responses(make_server):
    """A pool that decodes responses still gets raw bytes back (the backend builds its own)."""
    server = make_server(password="pw")
    pool = redis.ConnectionPool(host="127.0.0.1", port=server.port, password="pw", decode_responses=True)
    ex = run_quickstart("decoded", pool)
    check_quickstart(ex)
    assert repr(ex.backend) == f"RedisBackend('redis://:***@127.0.0.1:{server.port}/0')"


def test_redis_client(redis_uri):
    ex = run_quickstart("by_client", redis.Redis.from_url(redis_uri))
    check_quickstart(ex)
    assert ex.backend.uri == redis_uri


def test_unix_socket_pool(make_server):
    server = make_server(unix_socket=True)
    pool = redis.ConnectionPool(connection_class=redis.UnixDomainSocketConnection, path=str(server.socket_path))
    ex = run_quickstart("unix_pool", pool)
    check_quickstart(ex)
    assert ex.backend.uri == f"unix://{server.socket_path}?db=0"


def test_plugin_import_does_not_import_redis():
    """``daskperiment plugins`` and local experiments never pay for importing redis."""
    code = ("import sys, pathlib, daskperiment_redis as p; "
            "assert p.make_backend(experiment_id='x', target=pathlib.Path('d')) is None; "
            "assert 'redis' not in sys.modules, 'redis imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
