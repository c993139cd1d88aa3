"""2. Accept to delivery: from a webhook's 2xx to the fake DingTalk receiving asyncsend_v2.

Each alert carries a unique summary (`a2d-<phase>-<n>`). The client notes the time
of each 2xx; the fake notes when each call arrived (both in this process, one
clock). The latency of an alert is the first arrival that contains its summary.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.dingtalk import FakeDingTalk

from .common import pct, wait_drained
from .ingest import payload

STEADY_RATE = 50
STEADY_S = 10
BURST = 1000
BURST_CONNS = 8
TIMEOUT_S = 120
MARK = re.compile(r"a2d-(\w+?)-(\d+) ")


def one_alert(phase: str, n: int) -> bytes:
    p = payload(1, tag=f"a2d-{phase}-{n}")
    p["alerts"][0]["fingerprint"] = f"{phase}{n:012d}"
    p["groupKey"] = f'{{}}:{{alertname="HighLatency",n="{phase}{n}"}}'
    return json.dumps(p).encode()


class Poster:
    """One keep-alive connection; returns the wall-clock time of each 2xx."""

    def __init__(self, url: str) -> None:
        self.parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(
            self.parts.hostname or "127.0.0.1", self.parts.port, timeout=30
        )

    def post(self, body: bytes) -> float | None:
        self.conn.request("POST", "/alertmanager", body, {"Content-Type": "application/json"})
        res = self.conn.getresponse()
        res.read()
        return time.time() if 200 <= res.status < 300 else None


def steady(url: str) -> dict[int, float]:
    poster, accepted = Poster(url), {}
    start = time.monotonic()
    for n in range(STEADY_RATE * STEADY_S):
        at = start + n / STEADY_RATE
        if at > time.monotonic():
            time.sleep(at - time.monotonic())
        t = poster.post(one_alert("steady", n))
        if t is not None:
            accepted[n] = t
    return accepted


def burst(url: str) -> dict[int, float]:
    return post_many([url], BURST, BURST_CONNS, lambda n: one_alert("burst", n))


def post_many(
    urls: list[str], count: int, conns: int, body: Callable[[int], bytes]
) -> dict[int, float]:
    """`body(n)` for n < count, posted from `conns` connections spread over `urls` in turn;
    the wall-clock time of each one's 2xx, by n."""
    accepted: dict[int, float] = {}
    todo = iter(range(count))
    lock = threading.Lock()

    def client(k: int) -> None:
        poster = Poster(urls[k % len(urls)])
        while True:
            with lock:
                n = next(todo, None)
            if n is None:
                return
            t = poster.post(body(n))
            if t is not None:
                with lock:
                    accepted[n] = t

    threads = [threading.Thread(target=client, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return accepted


def arrivals(fake: FakeDingTalk, phase: str) -> dict[int, float]:
    first: dict[int, float] = {}
    for req in fake.sends():
        for p, n in MARK.findall(json.dumps(req.body, ensure_ascii=False)):
            if p == phase:
                first[int(n)] = min(first.get(int(n), req.received_at), req.received_at)
    return first


def figures(
    fake: FakeDingTalk, phase: str, accepted: dict[int, float], secs: float
) -> dict[str, Any]:
    got = arrivals(fake, phase)
    lat = [(got[n] - t) * 1000 for n, t in accepted.items() if n in got]
    return {
        "alerts": len(accepted),
        "delivered": len(lat),
        "accept_s": round(secs, 2),
        "p50_ms": round(pct(lat, 50) or 0, 1),
        "p99_ms": round(pct(lat, 99) or 0, 1),
        "max_ms": round(max(lat, default=0), 1),
    }


def measure(url: str, fake: FakeDingTalk) -> dict[str, Any]:
    wait_drained(url, TIMEOUT_S)
    out: dict[str, Any] = {}
    for phase, run in (("steady", steady), ("burst", burst)):
        t0 = time.monotonic()
        accepted = run(url)
        secs = time.monotonic() - t0
        drained = wait_drained(url, TIMEOUT_S)
        out[phase] = figures(fake, phase, accepted, secs)
        out[phase]["drain_after_accept_s"] = None if drained is None else round(drained, 2)
    out["steady"]["rate"] = STEADY_RATE
    out["burst"]["connections"] = BURST_CONNS
    return out
