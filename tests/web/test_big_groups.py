"""Big groups page, and a body over the limit gets a clean 413 (issue #22, point 4).

The figures (body sizes, times, memory) are printed: run with -s to see them.
"""

from __future__ import annotations

import io
import json
import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.wrappers import Request

from receiver.settings import Settings
from receiver.web.app import create_app
from receiver.web.body import BodyTooLarge, read_body
from tests.conftest import ROOT, SIMPLE_ROUTING, env_for, plan_pending
from tests.fakes.dingtalk import FakeDingTalk
from tests.fixtures.generate import alert, go_json, payload
from tests.procs import Serve, http, serve
from tests.test_e2e import receiver_env

LIMIT = 1 << 20
TEN_MB = 10_000_000


def group(n: int) -> bytes:
    """An Alertmanager body of one group of `n` alerts, as Alertmanager writes it."""

    def one(i: int) -> dict[str, object]:
        labels = {
            "alertname": "DiskFull", "cluster": "sh-prod-1", "device": "/dev/vdb",
            "instance": f"db-{i}.example.com:9100", "job": "node", "severity": "critical",
            "team": "db",
        }  # fmt: skip
        annotations = {
            "summary": f"Disk /dev/vdb on db-{i} is 95% full",
            "description": f"Filesystem /data on db-{i}.example.com has less than 5% left.",
            "runbook_url": "https://runbooks.example.com/disk-full",
        }
        return alert(labels, annotations, "2026-11-28T03:14:15.926Z")

    return go_json(payload("ops", [one(i) for i in range(n)], ["alertname"])).encode()


def raw_post(port: int, body: bytes, *, chunked: bool = False, close: bool = True) -> bytes:
    """POST `body` over a raw socket, send all of it, then read the whole reply."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = (
        f"POST /alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
    ).encode()
    if chunked:
        step = 1 << 16
        body = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + step]), body[i : i + step])
            for i in range(0, len(body), step)
        ) + b"0\r\n\r\n"  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body)  # a reset would raise here: BrokenPipe / ConnectionReset
        reply = b""
        while data := s.recv(65536):
            reply += data
            top, sep, rest = reply.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in top.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]  # fmt: skip
            if sep and length and len(rest) >= length[0]:
                break  # a kept-alive connection stays open after the reply
    return reply


@pytest.fixture(scope="module")
def small_limit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("big-bodies")
    settings = Settings(
        data_dir=str(tmp / "data"), routing=str(SIMPLE_ROUTING), templates=str(ROOT / "templates")
    )
    with serve(env_for(settings, RECEIVER_MAX_BODY_BYTES=str(LIMIT)), tmp / "serve.log") as srv:
        yield srv


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("chunked", "close"), [(False, True), (False, False), (True, True), (True, False)],
    ids=["length-close", "length-keepalive", "chunked-close", "chunked-keepalive"],
)  # fmt: skip
def test_a_10_mb_body_over_the_limit_gets_a_clean_413(
    small_limit: Serve, chunked: bool, close: bool
) -> None:
    t0 = time.monotonic()
    reply = raw_post(small_limit.port, b"[" + b" " * (TEN_MB - 2) + b"]", chunked=chunked,
                     close=close)  # fmt: skip
    took = time.monotonic() - t0
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line = head.partition(b"\r\n")[0]
    print(f"\n10 MB body, limit {LIMIT}: {status_line!r} {body!r} in {took:.2f}s")
    assert head.startswith(b"HTTP/1.1 413 "), reply[:300]
    assert b"application/json" in head
    assert "RECEIVER_MAX_BODY_BYTES" in json.loads(body)["error"]
    # and the server takes the next webhook as before
    assert http("POST", small_limit.url + "/alertmanager", group(1))[0] == 200


@pytest.mark.e2e
def test_a_10000_alert_group_is_accepted_and_paged(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    body = group(10_000)
    with serve(receiver_env(tmp_path, fake_dingtalk), tmp_path / "serve.log") as srv:
        t0 = time.monotonic()
        status, reply = http("POST", srv.url + "/alertmanager", body, timeout=60)
        accepted = time.monotonic() - t0
        assert status == 200, reply
        assert reply["alerts"] == 10_000
        assert fake_dingtalk.wait_for(lambda f: len(f.sends()) >= 1, 120), srv.text()
        paged = time.monotonic() - t0
    text = json.dumps(fake_dingtalk.sends()[0].body, ensure_ascii=False)
    print(
        f"\n10,000-alert group: body {len(body) / 1e6:.1f} MB ({len(body) // 10_000} B an alert),"
        f" default limit {Settings().max_body_bytes / 1e6:.1f} MB; accepted in {accepted:.2f}s,"
        f" first send {paged:.2f}s after the POST"
    )
    assert len(body) <= Settings().max_body_bytes
    assert "9994" in text or "还有" in text, text[:500]


def test_planning_a_10000_alert_group_takes_bounded_time_and_memory(settings: Settings) -> None:
    body = group(10_000)
    app = create_app(settings.with_(max_body_bytes=Settings().max_body_bytes))
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        r = app.test_client().post("/alertmanager", data=body, content_type="application/json")
        accept_s, accept_peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
        assert r.status_code == 200, r.get_json()
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        assert plan_pending(app) == 1
        plan_s, plan_peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    items = app.extensions["receiver"].outbox.items()
    msg = json.dumps([i.msg for i in items], ensure_ascii=False)
    print(
        f"\n10,000-alert group ({len(body) / 1e6:.1f} MB), under tracemalloc: accept "
        f"{accept_s:.2f}s peak {accept_peak / 1e6:.0f} MB; plan {plan_s:.2f}s peak "
        f"{plan_peak / 1e6:.0f} MB; {len(items)} message(s), the first "
        f"{len(json.dumps(items[0].msg, ensure_ascii=False).encode())} bytes"
    )
    assert "还有" in msg  # the message lists what fits and says how many more
    assert accept_s < 60 and plan_s < 120  # generous: a shared machine, under tracemalloc
    assert plan_peak < 40 * len(body)


class Trickle(io.RawIOBase):
    """A stream that hands out `size` bytes at most `step` at a time, as a socket does."""

    def __init__(self, size: int, step: int = 8192) -> None:
        self.left, self.step = size, step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, self.step, self.left if n < 0 else n)
        self.left -= n
        return b" " * n


def request(stream: io.RawIOBase, length: int | None) -> Request:
    environ = {"REQUEST_METHOD": "POST", "wsgi.input": stream, "wsgi.input_terminated": True}
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    return Request(environ)


@pytest.mark.parametrize("length_known", [True, False])
def test_a_body_is_read_in_bounded_memory(length_known: bool) -> None:
    size = 8 << 20
    tracemalloc.start()
    try:
        body = read_body(request(Trickle(size), size if length_known else None), size)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with pytest.raises(BodyTooLarge):
            read_body(request(Trickle(10 * size), None), size)  # chunked, 10x the limit
        refused_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(
        f"\nreading an {size >> 20} MiB body: peak {peak / size:.2f}x its size; a chunked"
        f" body of 10x the limit is refused at peak {refused_peak / size:.2f}x the limit"
    )
    assert len(body) == size
    assert peak < 2 * size + (1 << 20)
    assert refused_peak < 2 * size + (1 << 20)
