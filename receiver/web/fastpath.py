"""The webhooks' common case, answered in front of Flask.

A webhook that passes every check and is committed gets its 2xx from here: the same
checks, parse, commit, metrics and log lines as the Flask views (receiver.web.webhooks
runs them for both), without Flask's request context, URL matching and response
objects. In row 1 of the bench those were a quarter of a web worker's CPU: 0.68 →
0.50 ms a request (bench/README.md).

Anything else goes to the Flask app as it came, so every other reply is Flask's: a
method, path or header this does not take as it stands (another route, a trailing
slash, a receiver name that is not ASCII, no Content-Length, chunked); a failed auth
check; a body too large or not JSON. Once the body is read, the request goes to Flask
with the body replayed: a short body, a read that failed (the same exception, at the
same point), a bad signature, a payload that does not parse, an unknown receiver.
And a commit that failed goes to Flask with its exception carried (`CARRIED`), which
the view raises where it would have committed: nothing is written twice, and the
reply (a 503, say) and the outcome counted are the view's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import parse_options_header

from receiver.ingest import alertmanager
from receiver.ingest.grafana import parse_grafana
from receiver.web.webhooks import CARRIED, Parser, Webhooks, is_json

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# path head -> (source, parser, methods): the routes of receiver.web.app.
ROUTES: dict[str, tuple[str, Parser, frozenset[str]]] = {
    "/alertmanager": ("alertmanager", alertmanager.parse_alertmanager, frozenset({"POST"})),
    "/grafana": ("grafana", parse_grafana, frozenset({"POST", "PUT"})),
}
HEADERS = [("Content-Type", "application/json")]


class Replay:
    """A request body read already, for the Flask app to read again: its bytes, then
    what the first read met at their end (an exception, or the end of the stream)."""

    def __init__(self, body: bytes, error: BaseException | None = None) -> None:
        self.body, self.pos, self.error = body, 0, error

    def read(self, size: int | None = -1) -> bytes:
        end = len(self.body) if size is None or size < 0 else self.pos + size
        out = self.body[self.pos : end]
        self.pos += len(out)
        if not out and self.error is not None and size != 0:
            raise self.error
        return out


def route(environ: dict[str, Any]) -> tuple[str, Parser, str | None] | None:
    """The webhook route a request takes: (source, parser, receiver); None for another."""
    path: str = environ.get("PATH_INFO", "")
    head, slash, name = path.partition("/")[2].partition("/")
    found = ROUTES.get("/" + head)
    if found is None or environ.get("REQUEST_METHOD") not in found[2]:
        return None
    if slash and (not name or "/" in name or not name.isascii()):
        return None  # Flask's to match (or not), and to decode
    return found[0], found[1], name if slash else None


class FastPath:
    """WSGI middleware: the webhooks' accepted case here, every other request to `app`."""

    def __init__(self, app: WSGIApp, webhooks: Webhooks) -> None:
        self.app = app
        self.webhooks = webhooks

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        found = route(environ)
        length = environ.get("CONTENT_LENGTH") or ""
        size = int(length) if length.isdigit() else -1
        if (
            found is None or size < 0 or "HTTP_TRANSFER_ENCODING" in environ
            or size > self.webhooks.settings.max_body_bytes
        ):  # fmt: skip
            return self.app(environ, start_response)
        source, parse, receiver = found
        w = self.webhooks
        grafana = source == "grafana"
        try:
            w.state.poll()  # what the app's before_request does
            request_headers = EnvironHeaders(environ)  # what Flask's request.headers is
            headers = w.headers(request_headers, grafana)
            mimetype = parse_options_header(request_headers.get("Content-Type", ""))[0].lower()
            ours = w.authorized(headers, grafana) and is_json(mimetype)
        except Exception:
            ours = False
        if not ours:  # Flask's to answer (each call to it outside the `try`s: once only)
            return self.app(environ, start_response)
        try:
            body: bytes = environ["wsgi.input"].read(size)
        except Exception as e:
            return self.replay(environ, start_response, b"", e)
        try:
            notification = (
                parse(body)
                if len(body) == size and w.signed(headers, body, grafana)
                and not w.unknown(receiver) else None
            )  # fmt: skip
        except Exception:
            notification = None
        if notification is None:
            return self.replay(environ, start_response, body)
        try:
            out = w.commit(source, receiver, body, notification)
        except Exception as e:
            return self.replay(environ, start_response, body, carried=e)
        w.counted(source, "accepted").inc()
        start_response("200 OK", [*HEADERS, ("Content-Length", str(len(out)))])
        return [out]

    def replay(
        self, environ: dict[str, Any], start_response: Callable[..., Any], body: bytes,
        error: BaseException | None = None, *, carried: BaseException | None = None,
    ) -> Any:  # fmt: skip
        """The request to the Flask app, its body as read."""
        environ = {**environ, "wsgi.input": Replay(body, error)}
        if carried is not None:
            environ[CARRIED] = carried
        return self.app(environ, start_response)
