"""A small read-only web dashboard (``ex.start_dashboard()`` / ``daskperimentboard ID``).

Safe by default: binds to 127.0.0.1, answers only GET/HEAD, escapes everything it
shows (HTML-escaped tables and text, a strict Content-Security-Policy), and never
unpickles anything: it shows the plain-data history, code, environment and metrics.
"""

from __future__ import annotations

import argparse
import html
import logging
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Iterable, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from .experiment import Experiment

logger = logging.getLogger(__name__)

CSS = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}pre{background:#f6f6f6;padding:1em}")


def _page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><p><a href='/'>daskperiment</a></p>"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>").encode()


def _link(href: str, text: Any) -> str:
    return f"<a href='{html.escape(href, quote=True)}'>{html.escape(str(text))}</a>"


class DashboardApp:
    """Renders pages for a fixed set of experiments (read-only)."""

    def __init__(self, experiments: Iterable[Experiment]) -> None:
        self.experiments = {ex.id: ex for ex in experiments}

    def render(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if not parts:
            return 200, self.index()
        if parts[0] != "experiment" or len(parts) < 2 or parts[1] not in self.experiments:
            return 404, _page("Not found", "<p>No such page.</p>")
        ex = self.experiments[parts[1]]
        if len(parts) == 2:
            return 200, self.history(ex)
        if len(parts) == 4 and parts[2] == "trial" and parts[3].isdigit():
            return 200, self.trial(ex, int(parts[3]))
        if len(parts) == 4 and parts[2] == "metric":
            ids = [int(t) for t in query.get("trial", []) if t.isdigit()]
            return 200, self.metric(ex, parts[3], ids)
        return 404, _page("Not found", "<p>No such page.</p>")

    def index(self) -> bytes:
        items = "".join(f"<li>{_link(f'/experiment/{i}', i)} — {html.escape(repr(ex.backend))}</li>"
                        for i, ex in self.experiments.items())
        return _page("Experiments", f"<ul>{items}</ul>")

    def history(self, ex: Experiment) -> bytes:
        frame = ex.get_history(verbose=True)
        table = frame.to_html(escape=True, na_rep="")
        trials = " ".join(_link(f"/experiment/{ex.id}/trial/{t}", t) for t in frame.index)
        metrics = " ".join(_link(f"/experiment/{ex.id}/metric/{k}?" + "&".join(f"trial={t}" for t in frame.index[-10:]), k)
                           for k in ex.backend.metric_keys())
        return _page(f"Experiment {ex.id}", f"<p>Trials: {trials}</p><p>Metrics: {metrics or 'none'}</p>{table}")

    def trial(self, ex: Experiment, trial_id: int) -> bytes:
        records = ex.backend.load_trials([trial_id])
        if not records:
            return _page("Not found", f"<p>No trial {trial_id}.</p>")
        record = records[0]
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(repr(record.get(k)))}</td></tr>"
                       for k in ("parameters", "result", "result_type", "success", "seed", "description",
                                 "process_time", "host", "pid"))
        code = html.escape(ex.get_code(trial_id=trial_id))
        env = ex.get_environment(trial_id=trial_id)
        env_html = "".join(f"<h3>{html.escape(name)}</h3><pre>{html.escape(str(value))}</pre>"
                           for name, value in env.items())
        tb = record.get("traceback")
        tb_html = f"<h2>Traceback</h2><pre>{html.escape(tb)}</pre>" if tb else ""
        metrics = " ".join(_link(f"/experiment/{ex.id}/metric/{k}?trial={trial_id}", k)
                           for k in ex.backend.metric_keys(trial_id))
        return _page(f"Trial {trial_id} of {ex.id}",
                     f"<table>{rows}</table>{tb_html}<p>Metrics: {metrics or 'none'}</p>"
                     f"<h2>Code</h2><pre>{code}</pre><h2>Environment</h2>{env_html}")

    def metric(self, ex: Experiment, key: str, trial_ids: list[int]) -> bytes:
        try:
            frame = ex.load_metric(key, trial_id=trial_ids)
        except ValueError as exc:
            return _page(f"Metric {key}", f"<p>{html.escape(str(exc))}</p>")
        return _page(f"Metric {key} of {ex.id}", frame.to_html(escape=True, max_rows=2000))


def _handler(app: DashboardApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            try:
                status, body = app.render(url.path, parse_qs(url.query))
            except Exception:
                logger.exception("dashboard error on %s", url.path)
                status, body = 500, _page("Error", "<p>Internal error; see the server log.</p>")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def _read_only(self) -> None:
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "The dashboard is read-only")

        do_POST = do_PUT = do_DELETE = do_PATCH = _read_only

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

    return Handler


def serve(experiments: Sequence[Experiment], host: str = "127.0.0.1", port: int = 5000,
          blocking: bool | None = None) -> ThreadingHTTPServer:
    """Serve the dashboard; blocking when run as a script, in a thread when interactive."""
    from .script import _interactive

    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("Dashboard bound to %s: anyone who can reach this address can read the history", host)
    server = ThreadingHTTPServer((host, port), _handler(DashboardApp(experiments)))
    logger.info("Dashboard on http://%s:%d/", host, server.server_address[1])
    if blocking is None:
        blocking = not _interactive()
    if blocking:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    else:
        threading.Thread(target=server.serve_forever, name="daskperiment-dashboard", daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """``daskperimentboard EXPERIMENT_ID [...] [--backend …] [--port 5000]``."""
    from .backends import backend_argument
    from .experiment import Experiment

    parser = argparse.ArgumentParser(prog="daskperimentboard", description="Read-only dashboard.")
    parser.add_argument("experiment_ids", nargs="+")
    parser.add_argument("--backend", help="URI (redis://…) or directory (default: daskperiment_cache/<id>)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    try:
        experiments = [Experiment(i, backend=backend_argument(args.backend)) for i in args.experiment_ids]
    except ValueError as exc:
        print(f"daskperimentboard: error: {exc}", file=sys.stderr)
        return 2
    serve(experiments, host=args.host, port=args.port, blocking=True)
    return 0
