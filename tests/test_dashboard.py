"""The dashboard over HTTP: loopback only, read-only, escapes everything, clear errors.

What a browser does with the pages (clicks, charts, the report) is in
``test_dashboard_browser.py``; the filter language and downsampling have their own modules.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

import daskperiment
from daskperiment import hookimpl
from daskperiment.dashboard.catalog import Catalog
from daskperiment.dashboard.cli import open_catalog
from daskperiment.dashboard.server import DashboardError, collect_routes, serve
from daskperiment.plugins import make_plugin_manager, set_plugin_manager

PAYLOAD = "<script>alert(1)</script>"
METRIC = "<b>m</b>"


@pytest.fixture
def served():
    ex = daskperiment.Experiment("board")
    label = ex.parameter("label")

    @ex.result
    def f(label):
        ex.save_metric(METRIC, epoch=0, value=1.0)
        if label == "fail":
            raise ValueError(PAYLOAD)
        return label

    ex.set_parameters(label=PAYLOAD)
    f(label).compute()
    ex.set_parameters(label="fail")
    with pytest.raises(ValueError):
        f(label).compute()
    server = ex.start_dashboard(port=0, blocking=False)
    host, port = server.server_address[:2]
    yield ex, f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, response.read().decode()


def status_of(url, method="GET", headers=None):
    try:
        request = urllib.request.Request(url, method=method, headers=headers or {},
                                         data=b"x" if method in ("POST", "PUT", "PATCH") else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def raw_get(base, path, host_header=None):
    """A request whose path the client does not normalise (``..`` stays ``..``)."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("GET", path, skip_host=host_header is not None)
    if host_header is not None:
        conn.putheader("Host", host_header)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read().decode(errors="replace")
    conn.close()
    return response.status, body


def test_binds_to_loopback(served):
    _, base = served
    assert base.startswith("http://127.0.0.1:")


def test_pages_escape_values_and_send_a_strict_csp(served):
    _, base = served
    for path in ("/", "/experiment/board", "/experiment/board/trial/1", "/experiment/board/trial/2",
                 "/experiment/board/compare?trial=1&trial=2"):
        status, headers, body = get(base + path)
        assert status == 200
        assert "<script>alert(1)</script>" not in body
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
    _, _, body = get(base + "/experiment/board/trial/1")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "def f(label):" in body and "&lt;b&gt;m&lt;/b&gt;" in body
    _, _, body = get(base + "/experiment/board/trial/2")
    assert "ValueError(&lt;script&gt;alert(1)&lt;/script&gt;)" in body  # the error and its traceback


def test_json_is_served_as_json(served):
    _, base = served
    status, headers, body = get(base + "/api/experiment/board/runs")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert headers["X-Content-Type-Options"] == "nosniff"
    rows = json.loads(body)["rows"]
    assert [r[0] for r in rows] == [2, 1] and PAYLOAD in rows[1]


def test_metric_page_and_any_metric_name(served):
    _, base = served
    status, _, body = get(base + "/experiment/board/metric?" + urllib.parse.urlencode({"name": METRIC, "trial": 1}))
    assert status == 200 and "<b>m</b>" not in body
    status, _, body = get(base + "/api/experiment/board/metric?" + urllib.parse.urlencode({"name": METRIC, "trial": 1}))
    assert json.loads(body)["series"][0]["y"] == [1.0]


def test_metric_page_without_trial_says_what_to_add(served):
    _, base = served
    status, body = status_of(base + "/experiment/board/metric?name=" + urllib.parse.quote(METRIC))
    assert status == 400 and "which trials? Add ?trial=N" in body
    status, body = status_of(base + "/experiment/board/metric?name=nope&trial=1")
    assert status == 404 and "No metric &#39;nope&#39;" in body


def test_read_only_methods(served):
    _, base = served
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("/experiment/board", "/api/experiment/board/runs", "/static/dashboard.js", "/nope"):
            status, _ = status_of(base + path, method)
            assert status == 405, (method, path)
    _, headers, _ = get(base + "/experiment/board")  # HEAD: same headers, no body
    request = urllib.request.Request(base + "/experiment/board", method="HEAD")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and response.read() == b""
        assert response.headers["Content-Security-Policy"] == headers["Content-Security-Policy"]


def test_unknown_pages_are_404(served):
    _, base = served
    status, body = status_of(base + "/experiment/nope")
    assert status == 404 and "Known experiments: board" in body
    status, body = status_of(base + "/experiment/board/trial/999")
    assert status == 404 and "Trial 999 not found" in body and "1 to 2" in body
    assert status_of(base + "/no/such/page")[0] == 404
    assert status_of(base + "/api/experiment/board/metric?name=x&trial=abc")[0] == 404
    status, body = status_of(base + "/experiment/board/compare?trial=1")
    assert status == 400 and "two or more trials" in body
    assert status_of(base + "/experiment/board/compare?trial=1&trial=9")[0] == 404


def test_path_traversal_is_refused(served):
    _, base = served
    secret = os.path.abspath(daskperiment.__file__)
    for path in ("/static/../../../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/static/..%2f..%2f..%2f__init__.py", "/static/%2e%2e%2f__init__.py", "/static//etc/passwd",
                 "/experiment/..%2f..%2fetc", "/experiment/board/trial/..%2f1", "/static/uplot/../../__init__.py"):
        status, body = raw_get(base, path)
        assert status in (403, 404), (path, status)
        assert "root:" not in body and "__version__" not in body
    assert os.path.exists(secret)


def test_foreign_host_header_is_refused(served):
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 must not read the data."""
    _, base = served
    assert raw_get(base, "/experiment/board", host_header="evil.example")[0] == 403
    assert raw_get(base, "/api/experiment/board/runs", host_header="evil.example:80")[0] == 403
    assert raw_get(base, "/experiment/board", host_header="localhost")[0] == 200


def test_runs_api_sorts_filters_and_pages(tmp_path):
    ex = daskperiment.Experiment("runs_pj", backend=tmp_path)
    lr, note = ex.parameter("lr"), ex.parameter("note")

    @ex.result
    def f(lr, note):
        for epoch in range(3):
            ex.save_metric("val/loss", epoch=epoch, value=lr * (3 - epoch))
        if lr > 0.35:
            raise ValueError("too high")
        return lr * 10

    for i in range(1, 6):
        ex.set_parameters(lr=i / 10, note="same")
        try:
            f(lr, note).compute()
        except ValueError:
            pass
    catalog = Catalog({"runs_pj": ex.backend.read_only()})
    server = serve(catalog, port=0, blocking=False)
    api = server.url + "api/experiment/runs_pj/runs?"
    try:
        answer = json.loads(get(api + urllib.parse.urlencode({"sort": "lr", "desc": 0, "limit": 2}))[2])
        names = [c["name"] for c in answer["columns"]]
        assert names[:4] == ["Trial", "Status", "lr", "note"]
        assert {"val/loss.last", "val/loss.best"} <= set(names)
        assert answer["total"] == 5 and [r[0] for r in answer["rows"]] == [1, 2]
        varying = {c["name"]: c["varying"] for c in answer["columns"]}
        assert varying["lr"] and not varying["note"]
        row = dict(zip(names, answer["rows"][0]))
        assert row["val/loss.last"] == pytest.approx(0.1) and row["val/loss.best"] == pytest.approx(0.1)
        assert row["Status"] == "finished"
        answer = json.loads(get(api + urllib.parse.urlencode({"filter": "lr > 0.15 and Success"}))[2])
        assert [r[0] for r in answer["rows"]] == [3, 2] and answer["matched"] == 2
        answer = json.loads(get(api + urllib.parse.urlencode({"filter": "status == 'failed'"}))[2])
        assert [r[0] for r in answer["rows"]] == [5, 4]
        answer = json.loads(get(api + urllib.parse.urlencode({"filter": "`val/loss.best` < 0.25"}))[2])
        assert [r[0] for r in answer["rows"]] == [2, 1]
        status, body = status_of(api + urllib.parse.urlencode({"filter": "lr >"}))
        assert status == 400 and "expected a name, a number or a quoted text" in json.loads(body)["error"]
        status, body = status_of(api + urllib.parse.urlencode({"filter": "__import__('os').system('x')"}))
        assert status == 400
        answer = json.loads(get(server.url + "api/experiment/runs_pj/parallel")[2])
        assert answer["columns"] == ["lr", "note", "Result"] and len(answer["rows"]) == 3
    finally:
        server.shutdown()


def test_status_running_and_abandoned(tmp_path):
    ex = daskperiment.Experiment("status_pj", backend=tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    ex.backend.start_trial({"parameters": {}, "host": here, "pid": os.getpid()})
    ex.backend.start_trial({"parameters": {}, "host": here, "pid": dead.pid})
    ex.backend.start_trial({"parameters": {}, "host": "another-host", "pid": dead.pid})
    server = serve(Catalog({"status_pj": ex.backend.read_only()}), port=0, blocking=False)
    try:
        rows = json.loads(get(server.url + "api/experiment/status_pj/runs?desc=0")[2])["rows"]
        assert [r[1] for r in rows] == ["running", "abandoned", "running"]
        assert "abandoned" in get(server.url + "experiment/status_pj/trial/2")[2]
    finally:
        server.shutdown()


def test_metric_api_downsamples_a_million_points_keeping_extremes(tmp_path):
    ex = daskperiment.Experiment("big_pj", backend=tmp_path)
    trial_id = ex.backend.start_trial({"parameters": {}})
    values = np.sin(np.arange(1_000_000) / 1000.0)
    values[123_457] = 50.0
    values[876_543] = -50.0
    ex.backend.save_metrics(trial_id, "loss per step é", np.arange(1_000_000), values)
    server = serve(Catalog({"big_pj": ex.backend.read_only()}), port=0, blocking=False)
    try:
        url = server.url + "api/experiment/big_pj/metric?" + urllib.parse.urlencode(
            {"name": "loss per step é", "trial": trial_id, "points": 1000})
        series = json.loads(get(url)[2])["series"][0]
        assert series["points"] == 1_000_000 and len(series["x"]) <= 2000
        assert max(series["y"]) == 50.0 and min(series["y"]) == -50.0
        assert series["x"] == sorted(series["x"])
    finally:
        server.shutdown()


def test_a_writer_in_a_write_transaction_does_not_stop_the_dashboard(tmp_path):
    """The dashboard reads with SQLite mode=ro: a writer holding the write lock blocks nothing."""
    ex = daskperiment.Experiment("busy_pj", backend=tmp_path)
    ex.backend.finish_trial(ex.backend.start_trial({"parameters": {"a": 1}}), {"success": True, "result": 1})
    server = serve(Catalog({"busy_pj": ex.backend.read_only()}), port=0, blocking=False)
    writer = sqlite3.connect(tmp_path / "busy_pj.sqlite3", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO trials (parameters) VALUES ('{}')")
        rows = json.loads(get(server.url + "api/experiment/busy_pj/runs")[2])["rows"]
        assert [r[0] for r in rows] == [1]
        writer.execute("COMMIT")
        assert ex.backend.start_trial({"parameters": {}}) == 3  # and writing goes on with the dashboard open
    finally:
        writer.close()
        server.shutdown()


# ---- the command line ---------------------------------------------------------------------


def _board(*args, cwd):
    return subprocess.run([sys.executable, "-c", "from daskperiment.dashboard import main; raise SystemExit(main())",
                           *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_unknown_experiment_is_an_error_and_creates_nothing(tmp_path):
    result = _board("nosuch_pj", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("daskperimentboard: error: No experiment 'nosuch_pj'")
    assert list(tmp_path.iterdir()) == []
    result = _board("--port", "0", cwd=tmp_path)
    assert result.returncode == 2 and "No experiments found in daskperiment_cache/" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("port, message", [("99999", "Invalid port 99999: use a number from 1 to 65535"),
                                           ("in-use", "is already in use: pass another one, e.g. --port")])
def test_bad_port_is_one_line_naming_the_fix(tmp_path, port, message):
    daskperiment.Experiment("port_pj", backend=tmp_path / "store").backend.start_trial({"parameters": {}})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if port == "in-use":
            port = str(taken.getsockname()[1])
        result = _board("port_pj", "--backend", str(tmp_path / "store"), "--port", port, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_no_id_serves_every_experiment_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("first_pj", "second_pj"):
        ex = daskperiment.Experiment(name)
        ex.backend.finish_trial(ex.backend.start_trial({"parameters": {}}), {"success": True, "result": 2.5})
        ex.backend.close()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "-wal" not in p.name and "-shm" not in p.name)
    server = serve(open_catalog([], None), port=0, blocking=False)
    try:
        _, _, body = get(server.url)
        assert "first_pj" in body and "second_pj" in body and "2.5" in body
        assert status_of(server.url + "experiment/third_pj")[0] == 404
    finally:
        server.shutdown()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "-wal" not in p.name and "-shm" not in p.name)
    assert after == before


def test_report_command_writes_one_offline_file(tmp_path):
    ex = daskperiment.Experiment("report_pj", backend=tmp_path / "store")
    x = ex.parameter("x")

    @ex.result
    def f(x):
        ex.save_metric("loss", epoch=0, value=x)
        return x

    for value in (1, 2):
        ex.set_parameters(x=value)
        f(x).compute()
    out = tmp_path / "report.html"
    result = subprocess.run([sys.executable, "-m", "daskperiment.cli", "report", "report_pj", "--backend",
                             str(tmp_path / "store"), "-o", str(out)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "<script src" not in text and "<link" not in text.replace('<link rel="icon" href="data:,">', "")
    assert "uPlot" in text and '"loss"' in text and "report_pj" in text


# ---- plugins add pages ---------------------------------------------------------------------


def test_hook_register_routes(tmp_path):
    from daskperiment.dashboard import Page

    class Hello(Page):
        def get(self, name):
            self.render_page("message.html", title=f"Hello {name}", paragraphs=[f"Hi {name}, {PAYLOAD}"])

    class HelloPlugin:
        @hookimpl
        def register_routes(self, register):
            register(r"/hello/(?P<name>\w+)", Hello)

    pm = make_plugin_manager()
    pm.register(HelloPlugin(), name="hello")
    set_plugin_manager(pm)
    try:
        server = serve(Catalog({}), port=0, blocking=False)
        try:
            status, headers, body = get(server.url + "hello/world")
            assert status == 200 and "Hi world" in body and PAYLOAD not in body
            assert "default-src 'none'" in headers["Content-Security-Policy"]
            assert status_of(server.url + "hello/world", "POST")[0] == 405
            assert get(server.url)[0] == 200  # the built-in pages are there too
        finally:
            server.shutdown()

        class Clash:
            @hookimpl
            def register_routes(self, register):
                register(r"/", Hello)

        pm.register(Clash(), name="clash")
        with pytest.raises(DashboardError, match="'/' is registered twice: by plugin") as info:
            collect_routes(pm)
        assert "'dashboard'" in str(info.value) and "'clash'" in str(info.value)
        pm.unregister(name="clash")

        class NotAPage:
            @hookimpl
            def register_routes(self, register):
                register(r"/raw", object)

        pm.register(NotAPage(), name="raw")
        with pytest.raises(DashboardError, match="must subclass daskperiment.dashboard.Page"):
            collect_routes(pm)
    finally:
        set_plugin_manager(None)


def test_a_large_table_answers_the_newest_trials_first(tmp_path, monkeypatch):
    """From PARTIAL_FROM trials the whole table is built in the background: the first page comes from
    the newest trials at once (``building``), the next request gets the whole table."""
    from daskperiment.dashboard import catalog

    monkeypatch.setattr(catalog, "PARTIAL_FROM", 100)
    ex = daskperiment.Experiment("large_pj", backend=tmp_path)
    for i in range(150):
        trial_id = ex.backend.start_trial({"parameters": {"i": i}})
        ex.backend.save_metrics(trial_id, "loss", np.arange(3), np.array([3.0, 1.0, 2.0]) * i)
        ex.backend.finish_trial(trial_id, {"success": True, "result": i})
    data = catalog.ExperimentData("large_pj", ex.backend.read_only())
    first = json.loads(json.dumps(query_first_page(data)))
    assert first["building"] is True and first["total"] == 150 and len(first["rows"]) == 100
    assert first["rows"][0][0] == 150
    names = [c["name"] for c in first["columns"]]
    assert first["rows"][0][names.index("loss.last")] == 2.0 * 149
    assert first["rows"][0][names.index("loss.best")] == 1.0 * 149
    whole = data.runs()  # waits for the background build
    assert whole.complete and len(whole.frame) == 150
    assert query_first_page(data)["building"] is False


def query_first_page(data):
    from daskperiment.dashboard.runs import query_runs

    return query_runs(data.runs_future(first_page=True).result())
