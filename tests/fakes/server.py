"""A real HTTP server on a loopback port chosen at run time, for the fakes of remote APIs.

It speaks HTTP/1.1 with keep-alive, as DingTalk does, so that a client keeps its
connection and a benchmark measures the client, not a TCP handshake per call.
Every reply must carry a Content-Length. `stop` closes the kept connections too:
a client still holding one then sees the server gone, as it would in an outage.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.open: set[socket.socket] = set()  # kept-alive client connections
        self.open_lock = threading.Lock()

    def server_close(self) -> None:
        super().server_close()
        self.drop_connections()

    def drop_connections(self) -> None:
        """Close every kept connection, as a server does with idle ones; keep listening."""
        with self.open_lock:
            for conn in self.open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the client closed it first
            self.open.clear()


def serve(handle: Callable[[BaseHTTPRequestHandler], None]) -> ThreadingHTTPServer:
    """Serve GET and POST through `handle` on 127.0.0.1 in a daemon thread; quiet."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive; `handle` sends a Content-Length

        def setup(self) -> None:
            super().setup()
            # A handler that writes its headers and body apart (`reply` does not) would
            # otherwise see Nagle's algorithm hold the body until the client's delayed ACK.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with server.open_lock:
                server.open.add(self.connection)

        def finish(self) -> None:
            with server.open_lock:
                server.open.discard(self.connection)
            super().finish()

        def do_GET(self) -> None:
            handle(self)

        def do_POST(self) -> None:
            handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = _Server(Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def send_reply(h: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes) -> None:
    """The status line, the headers and the body in one write: one segment, as a real
    server sends a small reply, not two (and two reads for the client)."""
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(data)))
    h._headers_buffer.append(b"\r\n" + data)  # type: ignore[attr-defined]  # end_headers'
    h.flush_headers()


def drop_connections(server: ThreadingHTTPServer | None) -> None:
    if isinstance(server, _Server):
        server.drop_connections()


def stop(server: ThreadingHTTPServer | None) -> None:
    if server:
        server.shutdown()
        server.server_close()
