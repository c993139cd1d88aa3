"""One HTTP/1.1 exchange on a connected socket: the request written, its reply read.

`http.client` builds a request a header at a time and parses a reply's headers with
the email package: 0.07-0.09 ms of CPU a call against the fake DingTalk on loopback,
more than half of the transport's (bench/README.md). This writes the same request
in one piece and reads the reply with what it needs of it, and fails as
`http.client` does: `RemoteDisconnected` when the server closed the connection
without a word, `BadStatusLine`, `LineTooLong`, `IncompleteRead` and
`HTTPException` for a reply it can't read, `OSError`s as the socket raises them.
The connecting (proxies, CONNECT tunnels, TLS) stays `http.client`'s.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from typing import Any

MAX_LINE = 65536  # http.client's limits
MAX_HEADERS = 100
_METHODS_WITH_BODY = frozenset({"PATCH", "POST", "PUT"})
_BAD_TARGET = re.compile("[\x00-\x20\x7f]")  # http.client refuses these in a URL
_NAME = re.compile(r"[^:\s][^:\r\n]*")  # http.client's legal header name, matched whole
_BAD_VALUE = re.compile(r"\n(?![ \t])|\r(?![ \t\n])")
_NO_BODY = frozenset({204, 304})


def host_header(host: str, port: int | None, default_port: int) -> str:
    """The Host header for host:port, as http.client writes it."""
    try:
        text = host.encode("ascii").decode("ascii")
    except UnicodeEncodeError:
        text = host.encode("idna").decode("ascii")
    if ":" in text:  # IPv6, without a %zone
        text = "[" + text.split("%", 1)[0] + "]"
    return text if port is None or port == default_port else f"{text}:{port}"


def request_bytes(
    method: str, target: str, host: str, headers: dict[str, str], data: bytes | None
) -> bytes:
    """The request: line, Host, Accept-Encoding, Content-Length, the headers, the body."""
    if _BAD_TARGET.search(target) or _BAD_TARGET.search(method):
        raise http.client.InvalidURL(f"URL can't contain control characters. {target!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    if data is not None or method.upper() in _METHODS_WITH_BODY:
        lines.append(f"Content-Length: {len(data or b'')}")
    for name, value in headers.items():
        if not _NAME.fullmatch(name) or _BAD_VALUE.search(value):
            raise ValueError(f"Invalid header {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + data if data else head


def read_reply(sock: socket.socket | ssl.SSLSocket, method: str) -> tuple[int, bytes, bool]:
    """The reply to the request just sent: (status, body, whether the server closes)."""
    fp = sock.makefile("rb")
    try:
        while True:
            version, status = _status(fp)
            fields = _fields(fp)
            if status != 100:
                break
        will_close = _closes(version, fields)
        length: int | None = None
        chunked = fields.get("transfer-encoding", "").lower() == "chunked"
        if not chunked and fields.get("content-length"):
            try:
                length = int(fields["content-length"])
            except ValueError:
                length = None
            if length is not None and length < 0:
                length = None
        if status in _NO_BODY or 100 <= status < 200 or method.upper() == "HEAD":
            return status, b"", will_close
        if chunked:
            return status, _chunks(fp), will_close
        if length is None:  # to the end: the server closes
            return status, fp.read(), True
        body = fp.read(length)
        if len(body) < length:
            raise http.client.IncompleteRead(body, length - len(body))
        return status, body, will_close
    finally:
        fp.close()


def _line(fp: Any) -> bytes:
    line: bytes = fp.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong("header line")
    return line


def _status(fp: Any) -> tuple[str, int]:
    line = str(_line(fp), "iso-8859-1")
    if not line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    words = line.split(None, 2)
    if len(words) < 2 or not words[0].startswith("HTTP/"):
        raise http.client.BadStatusLine(line)
    try:
        status = int(words[1])
    except ValueError:
        raise http.client.BadStatusLine(line) from None
    if status < 100 or status > 999:
        raise http.client.BadStatusLine(line)
    if words[0] not in ("HTTP/1.0", "HTTP/0.9") and not words[0].startswith("HTTP/1."):
        raise http.client.UnknownProtocol(words[0])
    return words[0], status


def _fields(fp: Any) -> dict[str, str]:
    """The headers this needs, by lower-case name, the first of each (as `get` gives)."""
    fields: dict[str, str] = {}
    count = 0
    while True:
        line = _line(fp)
        if line in (b"\r\n", b"\n", b""):
            return fields
        count += 1
        if count > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        name, colon, value = str(line, "iso-8859-1").partition(":")
        if colon and name and name[0] not in " \t":
            fields.setdefault(name.strip().lower(), value.strip(" \t\r\n"))


def _closes(version: str, fields: dict[str, str]) -> bool:
    """Whether the server closes the connection after this reply (http.client's test)."""
    conn = fields.get("connection", "").lower()
    if version not in ("HTTP/1.0", "HTTP/0.9"):
        return "close" in conn
    if fields.get("keep-alive") or "keep-alive" in conn:
        return False
    return "keep-alive" not in fields.get("proxy-connection", "").lower()


def _chunks(fp: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        line = _line(fp)
        size_text = line.split(b";", 1)[0]
        try:
            size = int(size_text, 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None
        if size == 0:
            while _line(fp) not in (b"\r\n", b"\n", b""):
                pass  # the trailer
            return b"".join(parts)
        chunk = fp.read(size)
        if len(chunk) < size:
            raise http.client.IncompleteRead(b"".join(parts) + chunk, size - len(chunk))
        parts.append(chunk)
        fp.read(2)  # the CRLF after the chunk
