"""The gunicorn worker that `serve` runs: gevent, with RECEIVER_READ_TIMEOUT on each request,
and gunicorn's own error replies in JSON.

Why gevent (docs/operations.md, "Slow clients"): a gthread worker gives a thread to
a connection as soon as its first byte arrives, and a client that then trickles
holds that thread; 2 workers x 4 threads were held by 8 such clients. Under gevent a
connection costs a greenlet (a few KB), so slow clients wait side by side with the
webhooks, and DeadlineSocket bounds how long any of them may take: a 408 past it.

After each response the rest of an unread body (a 413, say) is read and dropped,
within the same deadline, before the connection is reused or closed, and after an
error reply of gunicorn's own the connection lingers a moment. Closing a socket with
bytes unread sends a reset, and a reset can destroy the reply before the client
reads it.

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

import contextlib
import gc
import json
import logging
import ssl
import sys
import warnings
from typing import Any

from gunicorn import util
from gunicorn.http.errors import ParseException
from gunicorn.workers.ggevent import GeventWorker

from receiver.settings import Settings
from receiver.web.deadline import REPLY_408, DeadlineSocket, ReadTimedOut

log = logging.getLogger(__name__)

LINGER_S = 2.0  # after a 408, or a body that could not be read to its end
DRAIN_STEP = 65536


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


SSL_NAMES = ("SSLContext", "SSLSocket", "wrap_socket")


class ReceiverWorker(GeventWorker):  # type: ignore[misc]
    def patch(self) -> None:
        """gevent's monkey-patching, in this worker process only (not the arbiter, which
        starts the delivery process). The arbiter imported requests, and with it ssl,
        before it forked this worker: urllib3 holds ssl's classes from before the patch,
        which would make its HTTPS sockets block the loop. They are pointed at the
        patched ones here, which is what gevent's warning about it asks for."""
        original = {name: getattr(ssl, name, None) for name in SSL_NAMES}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Monkey-patching ssl after ssl", Warning)
            super().patch()
        for name, module in list(sys.modules.items()):
            if module is not None and name.split(".")[0] == "urllib3":
                for attr in SSL_NAMES:
                    old = original[attr]
                    if old is not None and getattr(module, attr, None) is old:
                        setattr(module, attr, getattr(ssl, attr))

    def init_process(self) -> None:
        util.write_error = write_json_error  # handle_error writes through this name
        super().init_process()

    def load_wsgi(self) -> None:
        """Load the app, then move everything it loaded out of the garbage collector's reach.

        The routing table, the templates and the imported modules are tens of thousands
        of objects that live as long as the worker. Each full collection walked them all,
        20-50 ms (measured, bench/README.md) during which the worker's loop, and every
        request on it, stood still. Frozen, a full collection walks only what requests made.
        """
        super().load_wsgi()
        gc.collect()
        gc.freeze()

    def timeout_ctx(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # DeadlineSocket bounds the wait for a request

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # serve's app carries the settings; another (bench/bareflask.py) gets the default.
        settings = getattr(self.app, "settings", None)
        timeout = settings.read_timeout if isinstance(settings, Settings) else Settings.read_timeout
        wrapped = DeadlineSocket(client, read_timeout=timeout, idle_timeout=self.cfg.keepalive)
        super().handle(listener, wrapped, addr)

    def handle_request(self, listener_name: Any, req: Any, sock: DeadlineSocket, addr: Any) -> None:
        sock.request = req
        try:
            super().handle_request(listener_name, req, sock, addr)
        except StopIteration:  # the response said Connection: close
            self._finish_body(req, sock)
            raise
        if not self._finish_body(req, sock):
            raise StopIteration()
        sock.next_request()

    def _finish_body(self, req: Any, sock: DeadlineSocket) -> bool:
        """Read and drop what the app left of the body; False (after lingering) if it can't."""
        body = req.body
        if body is None:
            return True
        if not getattr(body, "failed", False):
            with contextlib.suppress(ReadTimedOut, OSError, ParseException):
                while body.read(DRAIN_STEP):
                    pass
                return True
        sock.linger(LINGER_S)
        return False

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, ReadTimedOut):
            log.info("request_timeout remote=%s error=%s", addr[0] if addr else "", exc)
            with contextlib.suppress(OSError):
                client.sendall(REPLY_408)
                client.linger(LINGER_S)
            return
        super().handle_error(req, client, addr, exc)
        # gunicorn stopped reading at the error (a request line too long, say): what the
        # client still sends must be read, or the close resets the reply away.
        if isinstance(client, DeadlineSocket):
            client.linger(LINGER_S)
