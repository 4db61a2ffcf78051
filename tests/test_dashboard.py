"""The dashboard: loopback only, read-only, escapes everything."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

import daskperiment


@pytest.fixture
def served():
    ex = daskperiment.Experiment("board")
    label = ex.parameter("label")

    @ex.result
    def f(label):
        ex.save_metric("<b>m</b>", epoch=0, value=1.0)
        return label

    ex.set_parameters(label="<script>alert(1)</script>")
    f(label).compute()
    server = ex.start_dashboard(port=0, blocking=False)
    host, port = server.server_address[:2]
    yield ex, f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers, response.read().decode()


def test_binds_to_loopback(served):
    _, base = served
    assert base.startswith("http://127.0.0.1:")


def test_history_and_trial_pages_escape_values(served):
    _, base = served
    for path in ("/experiment/board", "/experiment/board/trial/1"):
        status, headers, body = get(base + path)
        assert status == 200
        assert "<script>alert(1)</script>" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
        assert "default-src 'none'" in headers["Content-Security-Policy"]
    status, _, body = get(base + "/experiment/board/trial/1")
    assert "def f(label):" in body and "&lt;b&gt;m&lt;/b&gt;" in body


def test_metric_page(served):
    _, base = served
    status, _, body = get(base + "/experiment/board/metric/%3Cb%3Em%3C%2Fb%3E?trial=1")
    assert status == 200 and "<b>m</b>" not in body


def test_read_only(served):
    _, base = served
    request = urllib.request.Request(base + "/experiment/board", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 405


def test_unknown_pages_are_404(served):
    _, base = served
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "/experiment/nope", timeout=10)
    assert info.value.code == 404
