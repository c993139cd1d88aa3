"""A real HTTP server on a loopback port chosen at run time, for the fakes of remote APIs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(handle: Callable[[BaseHTTPRequestHandler], None]) -> ThreadingHTTPServer:
    """Serve GET and POST through `handle` on 127.0.0.1 in a daemon thread; quiet."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        def do_POST(self) -> None:
            handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def stop(server: ThreadingHTTPServer | None) -> None:
    if server:
        server.shutdown()
        server.server_close()
