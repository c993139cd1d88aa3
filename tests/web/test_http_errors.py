"""Every error the running receiver returns is JSON, gunicorn's own 4xx included.

gunicorn answers a request it can't parse before the app sees it; it wrote an
HTML page. These send malformed requests over a raw socket to a real
`dingtalk-receiver serve`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from receiver.settings import Settings
from tests.conftest import FIXTURES, ROOT, env_for
from tests.procs import Serve, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("http-errors")
    settings = Settings(
        data_dir=str(tmp / "data"),
        routing=str(FIXTURES / "routing" / "simple.yaml"),
        templates=str(ROOT / "templates"),
    )
    with serve(env_for(settings), tmp / "serve.log", workers=1) as srv:
        yield srv


def exchange(srv: Serve, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while data := s.recv(65536):
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


POST = b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
MALFORMED = {
    "not HTTP": (b"GARBAGE\r\n\r\n", 400),
    "bad version": (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    "bad header name": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400),
    "NUL in a header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    "header too long": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
        431,
    ),
    "too many headers": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: y\r\n" % i for i in range(200))
        + b"\r\n",
        431,
    ),
    "request line too long": (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "length and chunked": (
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    "bad content-length": (POST + b"Content-Length: abc\r\n\r\n", 400),
    "unknown coding": (POST + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    "bad chunk size": (POST + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", 400),
}


@pytest.mark.e2e
@pytest.mark.parametrize(("raw", "status"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_a_json_error(server: Serve, raw: bytes, status: int) -> None:
    got, headers, body = exchange(server, raw)
    assert got == status
    assert headers["content-type"] == "application/json"
    reply = json.loads(body)
    assert set(reply) == {"error"} and reply["error"], reply
    assert b"<html" not in body.lower()


@pytest.mark.e2e
def test_the_app_errors_are_json_too(server: Serve) -> None:
    for raw in (
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"DELETE /alertmanager HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        POST + b"Content-Length: 3\r\nConnection: close\r\n\r\n{x}",
    ):
        got, headers, body = exchange(server, raw)
        assert got in (400, 404, 405) and headers["content-type"] == "application/json"
        assert "error" in json.loads(body)
