"""The Flask application: a thin HTTP shell around ingest -> outbox.

A 2xx means the validated webhook is committed to the outbox, from which the
delivery process routes, renders and sends it (receiver.delivery.planner). The handler
never renders and never calls DingTalk, so accepting costs one parse and one insert.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkExtension, InvalidChunkSize
from werkzeug.exceptions import HTTPException

from receiver import metrics
from receiver.delivery import health
from receiver.delivery.outbox_dedup import Accept
from receiver.delivery.outbox_rows import Pending
from receiver.delivery.state import State
from receiver.errors import ConfigError, OutboxUnavailable, PayloadError
from receiver.ingest import alertmanager as ingest
from receiver.ingest import auth
from receiver.ingest.grafana import parse_grafana
from receiver.settings import Settings
from receiver.web import console
from receiver.web.ack import ack_blueprint
from receiver.web.committer import Committer
from receiver.web.console import full
from receiver.web.deadline import ReadTimedOut
from receiver.web.fastpath import FastPath
from receiver.web.offload import blocking
from receiver.web.webhooks import Webhooks, error

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, serving: bool = False) -> Flask:
    """The app. `serving` (under gunicorn) lets a worker boot on the last good routing.yaml."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    # One byte more than the limit: Werkzeug refuses a Content-Length over it, but cuts a
    # chunked body (no Content-Length) at it without a word. read_body reads one byte past
    # the limit and refuses the body itself when that byte is there.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    state = State(settings, fallback=serving, warn=not serving)  # the delivery process warns
    app.extensions["receiver"] = state

    @app.before_request
    def poll_config() -> None:
        state.poll()

    # Concurrent accepts share one transaction and one fsync (receiver.web.committer).
    committer: Committer[Accept, tuple[Pending, bool]] = Committer(
        lambda take: state.outbox.accept_many(take), max_batch=settings.commit_batch
    )
    app.extensions["receiver.committer"] = committer

    if serving:  # an idle worker picks up a reload too, not only on its next request
        state.start_watching()

    webhooks = Webhooks(settings, state, committer)

    @app.post("/alertmanager")
    @app.post("/alertmanager/<receiver>")
    def alertmanager(receiver: str | None = None) -> tuple[Response, int]:
        return webhooks.view(request, "alertmanager", ingest.parse_alertmanager, receiver)

    # Grafana's webhook contact point can be set to PUT as well as POST.
    @app.route("/grafana", methods=["POST", "PUT"])
    @app.route("/grafana/<receiver>", methods=["POST", "PUT"])
    def grafana(receiver: str | None = None) -> tuple[Response, int]:
        return webhooks.view(request, "grafana", parse_grafana, receiver)

    app.register_blueprint(ack_blueprint(state))

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify(status="ok"), 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        """503 unless the config is loaded, the outbox takes writes and delivery is polling."""
        # A refused file says so (ok: false), but is not unready: the older table serves,
        # and taking every replica out of rotation for a bad edit would stop paging.
        config = state.status()
        outbox: dict[str, object] = {"ok": True}
        try:
            outbox.update(blocking(state.outbox.counts))
        except OutboxUnavailable as e:
            outbox.update(ok=False, error=str(e))
        if (
            outbox["ok"]
            and not settings.database_url
            and (problem := blocking(health.probe_write, settings.data_dir))
        ):
            outbox.update(ok=False, error=problem)
        age = health.stalest_age(settings.data_dir, settings.delivery_processes)
        delivery: dict[str, object] = {"ok": age is not None and age < health.STALE_AFTER_S}
        delivery["heartbeat_age_s"] = None if age is None else round(age, 1)
        if not delivery["ok"]:
            delivery["error"] = (
                "the delivery worker has not started" if age is None
                else f"no delivery heartbeat for {age:.0f}s (limit {health.STALE_AFTER_S:.0f}s)"
            )  # fmt: skip
        ready = bool(outbox["ok"] and delivery["ok"])
        body = {"config": config, "outbox": outbox, "delivery": delivery}
        return jsonify(status="ready" if ready else "unready", **body), 200 if ready else 503

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        collector = metrics.OutboxCollector(state.outbox.stats, state.outbox.paused_reason)
        body, content_type = blocking(metrics.exposition, collector)
        return Response(body, content_type=content_type)

    @app.post("/-/reload")
    def reload() -> tuple[Response, int]:
        headers = dict(request.headers)
        if settings.admin_token and not auth.check_webhook_auth(
            headers, token=settings.admin_token, basic=None
        ):
            return error(401, "unauthorized")
        try:
            state.reload("request")
        except ConfigError as e:
            return jsonify(
                error="reload failed; the running config stays",
                problems=[str(p) for p in e.problems],
            ), 500
        return jsonify(status="reloaded"), 200

    console.register(app, settings)
    full.register(app, settings)
    # The webhooks' accepted case without Flask's request machinery; the rest through it.
    app.wsgi_app = FastPath(app.wsgi_app, webhooks)  # type: ignore[method-assign]

    @app.errorhandler(PayloadError)
    def payload_error(e: PayloadError) -> tuple[Response, int]:
        return error(e.status, f"{e.path}: {e.message}" if e.path else e.message)

    @app.errorhandler(OutboxUnavailable)
    def outbox_unavailable(e: OutboxUnavailable) -> tuple[Response, int]:
        log.error("outbox_unavailable error=%s", e)
        return error(503, "the outbox cannot take the write; retry later")

    # gunicorn reads a chunked body as the view reads it: bad framing surfaces here,
    # and it is the client's fault (400), not the receiver's (500).
    @app.errorhandler(InvalidChunkSize)
    @app.errorhandler(ChunkMissingTerminator)
    @app.errorhandler(InvalidChunkExtension)
    def bad_framing(e: Exception) -> tuple[Response, int]:
        return error(400, f"malformed chunked body: {e}")

    @app.errorhandler(ReadTimedOut)  # the body did not arrive within RECEIVER_READ_TIMEOUT
    def read_timed_out(e: ReadTimedOut) -> tuple[Response, int]:
        log.info("request_timeout remote=%s error=%s", request.remote_addr, e)
        return error(408, "the request was not received in time (RECEIVER_READ_TIMEOUT)")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[Response, int]:
        reply, status = error(e.code or 500, e.description or e.name)
        # Keep the exception's headers but its HTML content type: Allow on a 405, for one.
        reply.headers.extend((k, v) for k, v in e.get_headers() if k.lower() != "content-type")
        return reply, status

    return app
