"""A client connection whose reads share one deadline per request (RECEIVER_READ_TIMEOUT).

gunicorn reads a request's headers, and the app its body, through `recv` on this
wrapper, so one clock bounds both:

- **idle**, before the first byte of a request: the first request of a connection
  may take `read_timeout` to start, a later one (keep-alive) `idle_timeout`. Past
  that, `recv` returns b"" as if the client had closed, and the connection closes
  without a reply: nothing was asked, so nothing is answered.
- **reading**, from the connect (or from the first byte of a later request): the
  headers and the body must all have arrived within `read_timeout`. Past that,
  `recv` raises ReadTimedOut, and the client gets a 408.

Writes get `read_timeout` too, so a client that never reads its reply can't hold
the connection forever either. Nothing here imports gevent: under gevent's
monkey-patching these are cooperative sockets, elsewhere blocking ones.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

# The reply a client past its deadline gets. It may still be sending, so the
# connection lingers a moment after it (DeadlineSocket.linger).
_BODY_408 = b'{"error": "the request was not received in time (RECEIVER_READ_TIMEOUT)"}'
REPLY_408 = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY_408), _BODY_408)
)


class ReadTimedOut(Exception):
    """The client did not send its whole request within RECEIVER_READ_TIMEOUT."""


class DeadlineSocket:
    def __init__(self, sock: socket.socket, *, read_timeout: float, idle_timeout: float) -> None:
        self.sock = sock
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.request: Any = None  # gunicorn's Request being read, if its headers are in
        self.received = 0
        self.idle = False
        self.deadline = time.monotonic() + read_timeout

    def next_request(self) -> None:
        """The response went out: a later request has `idle_timeout` to start."""
        self.request = None
        self.received = 0
        self.idle = True
        self.deadline = time.monotonic() + self.idle_timeout

    @property
    def timed_out(self) -> bool:
        return self.received > 0 and time.monotonic() >= self.deadline

    def recv(self, size: int, *flags: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return self._expired()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(size, *flags)
        except TimeoutError:  # socket.timeout
            return self._expired()
        if data and self.idle:  # the first byte of a later request: its clock starts now
            self.idle = False
            self.deadline = time.monotonic() + self.read_timeout
        self.received += len(data)
        return data

    def _expired(self) -> bytes:
        if self.received == 0:
            return b""  # idle: close as if the client had
        if self.request is not None:
            self.request.must_close = True  # where the next request starts is unknown
        raise ReadTimedOut(
            f"{self.received} bytes of the request in {self.read_timeout:g}s"
            " (RECEIVER_READ_TIMEOUT)"
        )

    def send(self, data: bytes, *flags: int) -> int:
        self.sock.settimeout(self.read_timeout)
        return self.sock.send(data, *flags)

    def sendall(self, data: bytes, *flags: int) -> None:
        self.sock.settimeout(self.read_timeout)
        self.sock.sendall(data, *flags)

    def linger(self, seconds: float) -> None:
        """Say we are done (FIN), then read and drop what the client still sends, for up to
        `seconds` or until it closes. Closing with its bytes unread would send a reset,
        and a reset can destroy our reply before the client reads it."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self.sock.recv(65536):
                    break

    def close(self) -> None:
        self.sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)
