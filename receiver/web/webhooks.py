"""Accepting a webhook: its checks, its parse, its commit and its reply.

Two callers share this: the Flask views of /alertmanager and /grafana (every
request, and every reply but the plain 2xx), and the fast path in front of Flask
(receiver.web.fastpath), which answers the common case without Flask's request
machinery. Whatever the fast path can't answer alone it hands to the views.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Request, Response, jsonify

from receiver import metrics
from receiver.delivery.outbox_dedup import Accept
from receiver.delivery.outbox_rows import Pending
from receiver.delivery.state import State
from receiver.errors import OutboxUnavailable, PayloadError
from receiver.ingest import auth
from receiver.ingest.dedup import dedup_key
from receiver.model import Notification
from receiver.settings import Settings
from receiver.web.body import read_body
from receiver.web.committer import Committer

log = logging.getLogger("receiver.web.app")  # the name its lines have always had

Parser = Callable[[bytes], Notification]
# An outcome the fast path reached, which the view replays instead of committing again.
CARRIED = "receiver.webhooks.carried"


def error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


def reply(status: str, pending_id: int, alerts: int) -> bytes:
    """`jsonify(status=..., id=..., alerts=...)`, byte for byte, without its generic
    encoder: the reply every accepted (or duplicate) webhook gets."""
    return b'{"alerts":%d,"id":%d,"status":"%s"}\n' % (alerts, pending_id, status.encode())


def is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


class Webhooks:
    def __init__(
        self, settings: Settings, state: State, committer: Committer[Accept, tuple[Pending, bool]]
    ) -> None:
        self.settings = settings
        self.state = state
        self.committer = committer
        self.counted = metrics.Children(metrics.payloads_received)
        self.alerts_counted = metrics.Children(metrics.alerts_received)
        # Whether a webhook to /alertmanager (False) or /grafana (True) must show credentials.
        self.guarded = {
            grafana: bool(settings.webhook_token or settings.basic_auth
                          or (grafana and settings.grafana_hmac_secret))
            for grafana in (False, True)
        }  # fmt: skip

    def view(
        self, request: Request, source: str, parse: Parser, receiver: str | None
    ) -> tuple[Response, int]:
        """A webhook through Flask: its reply, its outcome counted."""
        outcome = "rejected"  # auth, content type, size, unknown receiver: another 4xx
        try:
            answer = self._view(request, source, parse, receiver)
            outcome = "accepted" if answer[1] < 300 else "rejected"
            return answer
        except PayloadError:
            outcome = "invalid"
            raise
        except OutboxUnavailable:
            outcome = "unavailable"
            raise
        finally:
            self.counted(source, outcome).inc()

    def _view(
        self, request: Request, source: str, parse: Parser, receiver: str | None
    ) -> tuple[Response, int]:
        grafana = source == "grafana"
        headers = self.headers(request.headers, grafana)
        # Token and basic auth before the body: a stranger cannot make a worker read 16 MiB.
        if not self.authorized(headers, grafana):
            return error(401, "unauthorized")
        mimetype = request.mimetype
        if not is_json(mimetype):
            return error(415, f"Content-Type must be application/json, got {mimetype or 'none'!r}")
        body = read_body(request, self.settings.max_body_bytes)
        if not self.signed(headers, body, grafana):
            return error(401, "unauthorized")
        notification = parse(body)
        if self.unknown(receiver):
            return error(404, f"unknown receiver {receiver!r} in {self.state.table.path}")
        carried: BaseException | None = request.environ.pop(CARRIED, None)
        if carried is not None:  # the fast path's commit failed so: answer as it would have
            raise carried
        out = self.commit(source, receiver, body, notification)
        return Response(out, mimetype="application/json"), 200

    def headers(self, headers: Any, grafana: bool) -> dict[str, str]:
        """The request's headers, for the auth checks; none when no check needs them."""
        return dict(headers) if self.guarded[grafana] else {}

    def authorized(self, headers: dict[str, str], grafana: bool) -> bool:
        """The token or basic auth (the half of the policy that needs no body)."""
        settings = self.settings
        return not self.guarded[grafana] or auth.check_webhook_auth(
            headers, token=settings.webhook_token, basic=settings.basic_auth
        )

    def signed(self, headers: dict[str, str], body: bytes, grafana: bool) -> bool:
        """Grafana's HMAC, where it is asked for (the half that needs the body)."""
        return not self.guarded[grafana] or auth.check_signature(
            headers, body, grafana=grafana, hmac_secret=self.settings.grafana_hmac_secret,
            now=time.time(),
        )  # fmt: skip

    def unknown(self, receiver: str | None) -> bool:
        return receiver is not None and receiver not in self.state.table.receivers

    def commit(self, source: str, receiver: str | None, body: bytes, n: Notification) -> bytes:
        """Commit a checked webhook; the reply, once its row is on disk (or a duplicate's)."""
        window = self.settings.dedup_window
        pending, stored = self.committer.submit(Accept(  # waits for its batch's commit (fsync)
            body, source, receiver, n.group_key,
            key=dedup_key(n, receiver) if window > 0 else None, window_s=window,
        ))  # fmt: skip
        alerts = len(n.alerts)
        if not stored:
            metrics.duplicate_payloads.labels(source).inc()
            log.info(
                "duplicate first_id=%d source=%s receiver=%s status=%s alerts=%d group_key=%s",
                pending.id, source, receiver or n.receiver, n.status, alerts, n.group_key,
            )  # fmt: skip
            return reply("duplicate", pending.id, alerts)
        self.alerts_counted(source).inc(alerts)
        log.info(
            "accepted id=%d source=%s receiver=%s status=%s alerts=%d group_key=%s",
            pending.id, source, receiver or n.receiver, n.status, alerts, n.group_key,
        )  # fmt: skip
        return reply("accepted", pending.id, alerts)
