"""The ingest baselines, under serve's gunicorn: bare Flask, and bare Flask plus one fsync.

`/alertmanager` only parses the JSON (the baseline the issue names). `/durable`
parses it and inserts the body into SQLite (WAL, synchronous=FULL, one transaction),
with nothing else: the least any receiver that keeps "2xx means on disk" must do.
The gunicorn settings are read from `receiver.server.ReceiverServer` itself, so a
change to serve's defaults (workers, worker class, threads, logging) moves the
baseline with it. Run: `python -m bench.bareflask --listen 127.0.0.1:PORT --data DIR`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import threading
from typing import Any

from flask import Flask, Response, jsonify, request
from gunicorn.app.base import BaseApplication

# Everything that shapes request handling; not the hooks, which start serve's delivery process.
SHARED = (
    "workers", "worker_class", "threads", "timeout", "graceful_timeout", "keepalive",
    "backlog", "worker_connections", "accesslog", "access_log_format", "logconfig_dict",
    "logger_class",
)  # fmt: skip


def serve_options(workers: int | None = None) -> dict[str, Any]:
    """The gunicorn options `dingtalk-receiver serve` runs with."""
    from receiver.settings import Settings
    from receiver.web.server import ReceiverServer

    settings = Settings.from_env(workers=workers)
    cfg = ReceiverServer(settings).cfg
    return {k: cfg.settings[k].get() for k in SHARED if k in cfg.settings}


def create_app(data_dir: str) -> Flask:
    app = Flask(__name__)
    local = threading.local()

    def db() -> sqlite3.Connection:
        if getattr(local, "db", None) is None:
            local.db = sqlite3.connect(_path(data_dir), timeout=5, isolation_level=None)
            local.db.execute("PRAGMA synchronous=FULL")
        return local.db  # type: ignore[no-any-return]

    @app.post("/alertmanager")
    def alertmanager() -> tuple[Response, int]:
        body = request.get_json()
        return jsonify(status="accepted", alerts=len(body.get("alerts", []))), 200

    @app.post("/durable")
    def durable() -> tuple[Response, int]:
        body = request.get_json()
        conn = db()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (request.get_data(),))
        conn.execute("COMMIT")
        return jsonify(status="accepted", alerts=len(body.get("alerts", []))), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify(status="ok"), 200

    return app


def _path(data_dir: str) -> str:
    return os.path.join(data_dir, "bare.sqlite3")


def create_db(data_dir: str) -> None:
    """Made once, before the workers start: WAL mode is a property of the file."""
    os.makedirs(data_dir, exist_ok=True)
    with sqlite3.connect(_path(data_dir)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS t (body BLOB)")


class Bare(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], data_dir: str) -> None:
        self.options = options
        self.data_dir = data_dir
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app(self.data_dir)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--data", required=True, help="a directory for /durable's SQLite file")
    args = ap.parse_args()
    create_db(args.data)
    Bare({**serve_options(args.workers), "bind": args.listen}, args.data).run()


if __name__ == "__main__":
    main()
