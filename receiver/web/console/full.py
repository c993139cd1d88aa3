"""GET /n/<token>: one whole notification, every alert, for the people it paged.

The "N more" link of a message cut by the byte budget opens it (when
RECEIVER_EXTERNAL_URL and RECEIVER_SECRET_KEY are set). The token is signed
(receiver.messages.tokens) and names one notification; it needs no login and
opens nothing else. A forged, altered or expired token gets one 403 page.
"""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, current_app, render_template

from receiver.delivery.planner import PARSERS
from receiver.delivery.state import State
from receiver.errors import PayloadError
from receiver.messages.links import NOTIFICATION_PAGE
from receiver.messages.tokens import verify
from receiver.settings import Settings
from receiver.web.console import secure


def create_blueprint(settings: Settings) -> Blueprint:
    secret = settings.secret_key or ""
    tz = ZoneInfo(settings.timezone)
    bp = Blueprint("notification_page", __name__, url_prefix="/n", template_folder="templates",
                   static_folder="static", static_url_path="/static")  # fmt: skip
    bp.after_request(secure)

    def when(t: datetime | None) -> str:
        return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if t else "-"

    def refuse(status: int, message: str) -> tuple[str, int]:
        return render_template("console/full_error.html", message=message), status

    @bp.get("/<token>")
    def page(token: str) -> tuple[str, int]:
        data = verify(secret, NOTIFICATION_PAGE, token, now=time.time())
        if data is None or not isinstance(data.get("n"), int):
            return refuse(403, "This link is not valid, or it has expired.")
        state: State = current_app.extensions["receiver"]
        stored = state.outbox.notification(data["n"])
        if stored is None:
            return refuse(404, "This notification is no longer kept.")
        try:
            n = PARSERS[stored.source](stored.body)
        except (PayloadError, KeyError):
            return refuse(404, "This notification can no longer be read.")
        alerts = sorted(n.alerts, key=lambda a: a.status != "firing")  # as the message orders
        received = datetime.fromtimestamp(stored.received_at).astimezone(tz)
        page = render_template("console/full.html", n=n, alerts=alerts, when=when,
                               received=when(received), tz=settings.timezone)  # fmt: skip
        return page, 200

    return bp


def register(app: Flask, settings: Settings) -> None:
    """Serve /n/<token> when the links can be made: RECEIVER_EXTERNAL_URL and the secret."""
    if settings.external_url and settings.secret_key:
        app.register_blueprint(create_blueprint(settings))
