"""The base of every dashboard page: GET/HEAD only, security headers, templates, errors.

Plugins subclass :class:`Page` for the routes they add with ``register_routes``, so
their pages get the same protections as the built-in ones.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

import tornado.web

from .catalog import Catalog, ExperimentData

__all__ = ["CSP", "NotFound", "Page", "PageError", "StaticFiles"]

logger = logging.getLogger("daskperiment.dashboard")

STATIC_DIR = pathlib.Path(__file__).with_name("static")

#: Everything from our own origin, nothing inline, nothing from elsewhere; no frames, no forms.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class PageError(tornado.web.HTTPError):
    """An answer other than 200 whose ``message`` (plain text) the error page shows."""

    def __init__(self, status: int, message: str, links: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status)
        self.message = message
        self.links = links or []


def _secure(handler: tornado.web.RequestHandler) -> None:
    for name, value in SECURITY_HEADERS.items():
        handler.set_header(name, value)
    handler.clear_header("Server")


def _check_host(handler: tornado.web.RequestHandler) -> None:
    """Behind a loopback bind, answer only requests addressed to a loopback name: a web page
    elsewhere whose DNS name is re-pointed at 127.0.0.1 (DNS rebinding) cannot read the data."""
    allowed = handler.settings.get("allowed_hosts")
    if allowed is not None and handler.request.host_name not in allowed:
        raise PageError(403, f"Host {handler.request.host_name!r} is not served here; open the dashboard "
                             "through 127.0.0.1 or localhost.")


class Page(tornado.web.RequestHandler):
    """A read-only dashboard route: define ``get``; HEAD answers the same without a body."""

    SUPPORTED_METHODS = ("GET", "HEAD")

    def set_default_headers(self) -> None:
        _secure(self)

    def prepare(self) -> None:
        _check_host(self)

    def head(self, *args: Any, **kwargs: Any) -> Any:
        return self.get(*args, **kwargs)

    @property
    def catalog(self) -> Catalog:
        catalog: Catalog = self.settings["catalog"]  # tornado's settings are a dict of Any
        return catalog

    def experiment(self, experiment_id: str) -> ExperimentData:
        """The experiment, or a 404 that lists the known ones (nothing is created)."""
        data = self.catalog.get(experiment_id)
        if data is None:
            known = self.catalog.ids()
            raise PageError(404, f"No experiment {experiment_id!r} here. Known experiments: "
                                 f"{', '.join(known) or 'none'}.", [(i, f"/experiment/{i}") for i in known])
        return data

    def int_arguments(self, name: str) -> list[int]:
        values = self.get_arguments(name)
        try:
            return [int(v) for v in values]
        except ValueError:
            raise PageError(400, f"?{name}= takes trial ids (whole numbers), got {values!r}.") from None

    def render_page(self, template: str, status_code: int = 200, **context: Any) -> None:
        """Render one of the dashboard's Jinja2 templates (autoescaped; ``base.html`` to extend,
        ``message.html`` for a title and ``paragraphs``)."""
        self.set_status(status_code)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.settings["templates"].get_template(template).render(inline=False, **context))

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, default=str, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, PageError):
            message, links = error.message, error.links
        elif status_code == 405:
            message, links = f"{self.request.method} is not allowed: the dashboard is read-only (GET and HEAD).", []
        elif status_code >= 500:
            message, links = "Internal error; the server log has the details.", []
        else:
            message, links = self._reason, []
        if self.request.path.startswith("/api/"):
            self.write_json({"error": message}, status_code)
        else:
            self.render_page("error.html", status_code, title=f"{status_code} {self._reason}", message=message,
                             links=links)


class NotFound(Page):
    """Every path no route matches."""

    def prepare(self) -> None:
        super().prepare()
        raise PageError(404, "No such page. The dashboard serves / (experiments), /experiment/ID (runs), "
                             "/experiment/ID/trial/N, /experiment/ID/compare?trial=N&trial=M and "
                             "/experiment/ID/metric?name=KEY&trial=N.", [("Experiments", "/")])


class StaticFiles(tornado.web.StaticFileHandler):
    """Our CSS, JavaScript and the vendored uPlot, with the same headers (tornado refuses paths
    outside the static directory)."""

    SUPPORTED_METHODS = ("GET", "HEAD")

    def initialize(self) -> None:  # type: ignore[override]
        super().initialize(path=str(STATIC_DIR))

    def set_default_headers(self) -> None:
        _secure(self)

    def prepare(self) -> None:
        _check_host(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")
