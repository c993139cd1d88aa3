"""The ingest baseline: a bare Flask endpoint that only parses the JSON, under serve's gunicorn.

The gunicorn settings are read from `receiver.server.ReceiverServer` itself, so a
change to serve's defaults (workers, worker class, threads, logging) moves the
baseline with it. Run: `python -m bench.bareflask --listen 127.0.0.1:PORT`.
"""

from __future__ import annotations

import argparse
from typing import Any

from flask import Flask, Response, jsonify, request
from gunicorn.app.base import BaseApplication

# Everything that shapes request handling; not the hooks, which start serve's delivery process.
SHARED = (
    "workers", "worker_class", "threads", "timeout", "graceful_timeout", "keepalive",
    "backlog", "worker_connections", "accesslog", "access_log_format", "logconfig_dict",
)  # fmt: skip


def serve_options(workers: int | None = None) -> dict[str, Any]:
    """The gunicorn options `dingtalk-receiver serve` runs with."""
    from receiver.server import ReceiverServer
    from receiver.settings import Settings

    settings = Settings.from_env(workers=workers)
    cfg = ReceiverServer(settings).cfg
    return {k: cfg.settings[k].get() for k in SHARED if k in cfg.settings}


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/alertmanager")
    def alertmanager() -> tuple[Response, int]:
        body = request.get_json()
        return jsonify(status="accepted", alerts=len(body.get("alerts", []))), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify(status="ok"), 200

    return app


class Bare(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--workers", type=int)
    args = ap.parse_args()
    Bare({**serve_options(args.workers), "bind": args.listen}).run()


if __name__ == "__main__":
    main()
