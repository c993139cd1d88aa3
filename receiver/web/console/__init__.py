"""The web console at /console/: server-rendered pages over the same code as the CLI.

It is registered only when RECEIVER_CONSOLE_TOKEN is set (otherwise /console/ is
a 404). Access rules are in `session`; the pages are in `pages_ops` (overview,
notifications) and `pages_tools` (route tester, template preview, on-call
calendar, routing). No page needs JavaScript; nothing is loaded from elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import Forbidden, NotFound
from werkzeug.wrappers.response import Response as BaseResponse

from receiver.delivery.state import State
from receiver.settings import Settings
from receiver.web.console import pages_ops, pages_tools
from receiver.web.console.session import (
    LOGIN_COOKIE,
    LOGIN_MAX_AGE_S,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Access,
    LoginLimiter,
    clear_cookie,
    csrf_ok,
    set_cookie,
)

# Pages are documents of their own: no frames, no scripts, no referrer (a /n/ link is a key).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PUBLIC = {"console.login", "console.static"}


def state() -> State:
    found: State = current_app.extensions["receiver"]
    return found


def secure(reply: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        reply.headers.setdefault(k, v)
    return reply


def create_blueprint(settings: Settings) -> Blueprint:
    if not (settings.console_token and settings.secret_key):
        raise ValueError("the console needs RECEIVER_CONSOLE_TOKEN and RECEIVER_SECRET_KEY")
    access = Access(settings.console_token, settings.secret_key)
    limiter = LoginLimiter()
    bp = Blueprint(
        "console",
        __name__,
        url_prefix="/console",
        template_folder="templates",
        static_folder="static",
    )

    @bp.before_request
    def guard() -> BaseResponse | None:
        g.session = access.session(request)
        if request.endpoint in PUBLIC:
            return None
        if g.session is None:
            if request.method == "POST":
                raise Forbidden("log in first")
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        if request.method == "POST" and not csrf_ok(g.session.csrf, request.form.get("csrf")):
            raise Forbidden("the form's CSRF token is missing or wrong; reload the page")
        return None

    bp.after_request(secure)

    @bp.errorhandler(Forbidden)
    def forbidden(e: Forbidden) -> tuple[str, int]:
        return render_template("console/error.html", message=e.description, status=403), 403

    @bp.errorhandler(NotFound)
    def not_found(e: NotFound) -> tuple[str, int]:
        message = "No such message: it was sent and purged, dropped, or never was."
        return render_template("console/error.html", message=message, status=404), 404

    tz = ZoneInfo(settings.timezone)

    def when(t: float | datetime | None) -> str:
        """A time in RECEIVER_TIMEZONE, to the second."""
        if t is None or t == 0:
            return "-"
        at = t if isinstance(t, datetime) else datetime.fromtimestamp(t, UTC)
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")

    @bp.context_processor
    def common() -> dict[str, Any]:
        s = g.get("session")
        return {"csrf": s.csrf if s else "", "logged_in": s is not None, "when": when,
                "tz": settings.timezone}  # fmt: skip

    @bp.route("/login", methods=["GET", "POST"])
    def login() -> BaseResponse | tuple[str, int]:
        target = request.values.get("next", "")
        if not target.startswith("/console/") or target.startswith("//"):
            target = url_for("console.overview")
        if request.method == "GET":
            nonce = access.new_session()[0].csrf  # a random value; no session yet
            reply = Response(render_template("console/login.html", nonce=nonce, next=target))
            set_cookie(reply, request, LOGIN_COOKIE, nonce, LOGIN_MAX_AGE_S)
            return reply
        given = request.form.get("token", "")
        if not csrf_ok(request.cookies.get(LOGIN_COOKIE), request.form.get("csrf")):
            raise Forbidden("the login form expired; reload the page")
        address = request.remote_addr or ""
        wait = limiter.retry_after(address)
        if wait > 0:
            message = f"Too many wrong tokens from {address}; try again in {wait:.0f} s."
            page = render_template("console/error.html", message=message, status=429)
            return Response(page, 429, {"Retry-After": str(int(wait) + 1)})
        if not access.token_ok(given):
            limiter.failed(address)
            # One answer for every wrong token, however wrong.
            nonce = request.form.get("csrf", "")
            page = render_template("console/login.html", nonce=nonce, next=target, failed=True)
            return page, 401
        _, cookie = access.new_session()
        done = redirect(target, 303)
        set_cookie(done, request, SESSION_COOKIE, cookie, SESSION_MAX_AGE_S)
        clear_cookie(done, LOGIN_COOKIE)
        return done

    @bp.post("/logout")
    def logout() -> BaseResponse:
        reply = redirect(url_for("console.login"), 303)
        clear_cookie(reply, SESSION_COOKIE)
        return reply

    pages_ops.add(bp, state)
    pages_tools.add(bp, state)
    return bp


def register(app: Flask, settings: Settings) -> None:
    """Add the console to `app` when RECEIVER_CONSOLE_TOKEN is set; otherwise do nothing."""
    if settings.console_token:
        app.register_blueprint(create_blueprint(settings))
