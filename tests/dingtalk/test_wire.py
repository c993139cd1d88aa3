"""receiver.dingtalk.wire writes what http.client wrote, and reads replies as it read them."""

from __future__ import annotations

import http.client
import io
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from receiver.dingtalk.wire import host_header, read_reply, request_bytes


class Capture:
    """A socket that keeps what is sent, and replies with canned bytes."""

    def __init__(self, reply: bytes = b"") -> None:
        self.sent = b""
        self.reply = reply

    def sendall(self, data: bytes) -> None:
        self.sent += bytes(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.reply)

    def close(self) -> None:
        pass


def stdlib_request(
    host: str, port: int | None, method: str, target: str, headers: dict[str, str], data: Any
) -> bytes:
    conn = http.client.HTTPConnection(host, port)
    sock = Capture()
    conn.sock = sock  # type: ignore[assignment]
    conn.request(method, target, body=data, headers=headers)
    return sock.sent


token = st.text(st.sampled_from("abcxyz0123456789-_.~%"), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    host=st.sampled_from(["oapi.dingtalk.com", "127.0.0.1", "::1", "bücher.example"]),
    port=st.sampled_from([None, 80, 8080]),
    method=st.sampled_from(["GET", "POST"]),
    path=st.lists(token, max_size=3).map(lambda p: "/" + "/".join(p)),
    query=st.none() | token.map(lambda t: "?access_token=" + t),
    headers=st.dictionaries(
        st.sampled_from(["User-Agent", "Accept", "Content-Type", "Authorization", "X-A"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    ),
    data=st.none() | st.binary(max_size=300),
)
def test_a_request_is_written_as_http_client_wrote_it(
    host: str,
    port: int | None,
    method: str,
    path: str,
    query: str | None,
    headers: dict[str, str],
    data: bytes | None,
) -> None:
    assume(port is not None or ":" not in host)  # http.client reads "::1" as "::", port 1
    target = path + (query or "")
    want = stdlib_request(host, port, method, target, headers, data)
    got = request_bytes(method, target, host_header(host, port, 80), headers, data)
    assert got == want


@pytest.mark.parametrize("target", ["/a b", "/a\r\nX-Evil: 1", "/\x7f"])
def test_a_url_with_control_characters_is_refused_as_http_client_did(target: str) -> None:
    with pytest.raises(http.client.InvalidURL):
        stdlib_request("h", None, "GET", target, {}, None)
    with pytest.raises(http.client.InvalidURL):
        request_bytes("GET", target, "h", {}, None)


def test_a_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        request_bytes("GET", "/", "h", {"X-A": "v\r\nX-Evil: 1"}, None)


JSON = b'{"errcode":0,"task_id":1001}'
REPLIES = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\n" + JSON,
    "length, JSON type": b"HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=utf-8"
    b"\r\nContent-Length: 28\r\nServer: x\r\n\r\n" + JSON,
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"a\r\n" + JSON[:10] + b"\r\n12;x=y\r\n" + JSON[10:] + b"\r\n0\r\nX-T: 1\r\n\r\n",
    "to the end": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>busy</html>",
    "close": b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy",
    "keep-alive 1.0": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}",
    "1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "1.0 proxy keep-alive": b"HTTP/1.0 200 OK\r\nProxy-Connection: Keep-Alive\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "no content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "bad length": b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n{}",
    "lower-case names": b"HTTP/1.1 429 Too Many\r\ncontent-length: 2\r\n"
    b"connection: Close\r\n\r\n{}",
    "no reason": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",
    "cut short": b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}",
    "nothing": b"",
    "not HTTP": b"SSH-2.0-OpenSSH\r\n\r\n",
    "bad status": b"HTTP/1.1 twohundred OK\r\n\r\n",
    "status out of range": b"HTTP/1.1 1000 OK\r\n\r\n",
    "long line": b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
    "too many headers": b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 101 + b"\r\n",
}


def stdlib_reply(data: bytes) -> tuple[int, bytes, bool]:
    res = http.client.HTTPResponse(Capture(data), method="POST")  # type: ignore[arg-type]
    res.begin()
    return res.status, res.read(), bool(res.will_close)


def outcome(read: Any, data: bytes) -> Any:
    try:
        return read(data)
    except (http.client.HTTPException, OSError) as e:
        return type(e)


@pytest.mark.parametrize("name", REPLIES)
def test_a_reply_is_read_as_http_client_read_it(name: str) -> None:
    data = REPLIES[name]
    want = outcome(stdlib_reply, data)
    assert outcome(lambda d: read_reply(Capture(d), "POST"), data) == want  # type: ignore[arg-type]
