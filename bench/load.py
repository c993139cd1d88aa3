"""The HTTP load generator: wrk (Debian package `wrk`) with bench/post.lua, else Python.

The Python fallback exists so that `make bench` still runs where wrk is missing. It
is clearly labelled in the results, because on a 2-core machine it competes with the
server for CPU far more than wrk does, and its figures are not comparable with wrk's.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .common import pct

LUA = Path(__file__).resolve().parent / "post.lua"
WRK = shutil.which("wrk")


def generator() -> str:
    return "wrk" if WRK else "python (wrk missing: apt-get install wrk)"


def run(url: str, body: Path, seconds: float, conns: int, rate: float = 0) -> dict[str, Any]:
    """POST `body` to `url` for `seconds`: as fast as `conns` connections go, or at `rate`/s."""
    if WRK:
        return _wrk(url, body, seconds, conns, rate)
    return _python(url, body.read_bytes(), seconds, conns, rate)


def _wrk(url: str, body: Path, seconds: float, conns: int, rate: float) -> dict[str, Any]:
    cmd = [str(WRK), "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA),
           url, "--", str(body)] + ([str(rate)] if rate else [])  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    r = json.loads(line.removeprefix("BENCH_JSON "))
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return _figures(r["requests"], errors, r["duration_us"] / 1e6,
                    r["p50_us"] / 1000, r["p99_us"] / 1000)  # fmt: skip


def _python(url: str, body: bytes, seconds: float, conns: int, rate: float) -> dict[str, Any]:
    parts = urlsplit(url)
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    start = time.monotonic()
    deadline = start + seconds
    slot = [start]
    interval = 1 / rate if rate else 0.0

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
        while True:
            with lock:
                slot[0] = max(slot[0] + interval, time.monotonic()) if interval else 0
                at = slot[0]
            if interval and at > time.monotonic():
                time.sleep(at - time.monotonic())
            if time.monotonic() >= deadline:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", parts.path, body, {"Content-Type": "application/json"})
                res = conn.getresponse()
                res.read()
                ok = 200 <= res.status < 300
            except OSError:
                conn.close()
                ok = False
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)
                errors[0] += not ok
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _figures(len(latencies), errors[0], time.monotonic() - start,
                    pct(latencies, 50) or 0.0, pct(latencies, 99) or 0.0)  # fmt: skip


def _figures(requests: int, errors: int, secs: float, p50: float, p99: float) -> dict[str, Any]:
    return {
        "requests": requests,
        "errors": errors,
        "seconds": round(secs, 2),
        "rps": round(requests / secs, 1) if secs else 0.0,
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
    }
