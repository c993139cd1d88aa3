"""HTTP behaviour that depends on the real server (gunicorn), and on what the reply carries.

Found in a review of the HTTP layer; each test failed before its fix.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, env_for
from tests.procs import Serve, serve

AM = (FIXTURES / "alertmanager" / "firing-4.json").read_bytes().rstrip()
LIMIT = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("http-review")
    settings = Settings(
        data_dir=str(tmp / "data"),
        routing=str(FIXTURES / "routing" / "simple.yaml"),
        templates=str(Path(__file__).resolve().parent.parent / "templates"),
    )
    env = env_for(settings, RECEIVER_MAX_BODY_BYTES=str(LIMIT))
    with serve(env, tmp / "serve.log", workers=1) as srv:
        yield srv


def post_chunked(srv: Serve, path: str, body: bytes, chunk: int = 1000) -> tuple[int, bytes]:
    """POST with Transfer-Encoding: chunked and no Content-Length; (status, reply body)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    chunks = b"".join(
        b"%x\r\n" % len(body[i : i + chunk]) + body[i : i + chunk] + b"\r\n"
        for i in range(0, len(body), chunk)
    )
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(head + chunks + b"0\r\n\r\n")
        reply = b""
        while data := s.recv(65536):
            reply += data
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def padded(size: int) -> bytes:
    """The Alertmanager fixture, valid JSON, padded with trailing spaces to `size` bytes."""
    assert len(AM) <= size
    return AM + b" " * (size - len(AM))


def big_annotation(size: int) -> bytes:
    doc = json.loads(AM)
    doc["alerts"][0]["annotations"]["description"] = "x" * size
    return json.dumps(doc).encode()


@pytest.mark.parametrize("size", [len(AM), LIMIT])
def test_chunked_body_within_the_limit_is_accepted(server: Serve, size: int) -> None:
    status, body = post_chunked(server, "/alertmanager", padded(size))
    assert status == 200, body
    assert json.loads(body)["status"] == "accepted"


@pytest.mark.parametrize(
    "body",
    [padded(LIMIT + 1), padded(3 * LIMIT), big_annotation(2 * LIMIT)],
    ids=["one byte over", "padding over", "annotation over"],
)
def test_chunked_body_over_the_limit_is_413(server: Serve, body: bytes) -> None:
    # Without Content-Length, Werkzeug cut the body at the limit instead of refusing it:
    # a 400 "invalid JSON" for a valid body, or a 200 for one over the limit.
    status, reply = post_chunked(server, "/alertmanager", body)
    assert status == 413, reply
    assert "error" in json.loads(reply)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/alertmanager", {"POST"}),
        ("PUT", "/alertmanager/ops", {"POST"}),
        ("GET", "/grafana", {"POST", "PUT"}),
        ("GET", "/-/reload", {"POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_405_says_which_methods_are_allowed(
    settings: Settings, method: str, path: str, allowed: set[str]
) -> None:
    # RFC 9110 15.5.6: a 405 MUST carry Allow. The JSON error handler dropped it.
    r = create_app(settings).test_client().open(path, method=method)
    assert r.status_code == 405
    assert "error" in r.get_json()
    assert allowed <= {m.strip() for m in r.headers.get("Allow", "").split(",")}
