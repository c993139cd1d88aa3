"""The gunicorn worker `serve` runs: gthread, with gunicorn's own error replies in JSON.

gunicorn answers a request it can't parse (a bad request line or header, a
header or line too long, bad chunked framing) by itself, before the Flask app
sees it, with an HTML page. Every reply of the receiver is JSON
(`{"error": "..."}`), so this worker writes those in JSON too, with gunicorn's
status and reason (400, 414, 431, 501, and 500 when the app itself crashed).

gunicorn builds these replies in `Worker.handle_error`, which maps each parse
error to its status and then writes the page through `gunicorn.util.write_error`.
The mapping is kept and only the writer is replaced, in the worker process,
before it serves. See docs/operations.md for what still can't be JSON.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


def write_json_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's `util.write_error`, in JSON: `{"error": "Bad Request: ..."}`."""
    text = f"{reason}: {message}" if message else reason
    body = json.dumps({"error": text}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1", "replace") + body)


class JsonErrorWorker(ThreadWorker):  # type: ignore[misc]
    def init_process(self) -> None:
        util.write_error = write_json_error  # handle_error writes through this name
        super().init_process()
