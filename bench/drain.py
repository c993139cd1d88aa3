"""7. Delivery alone: its idle CPU, and how fast it drains a backlog of 10-alert webhooks.

Idle: the delivery process's CPU over IDLE_S seconds with nothing to do (it should
sleep on its wake-up socket, not poll), summed over its threads to the nanosecond
(until 5 December in 10-ms clock ticks, against a target of 0.05 s). Drain: the
delivery process is frozen (SIGSTOP), WEBHOOKS 10-alert webhooks are accepted, each
its own alert group (so none replaces another: every one is routed, rendered and
sent), then it is thawed and timed until the outbox is empty. Its CPU over that time,
per webhook, is the cost of delivering one. The drain's rate is timed two ways: to the
moment a 0.1-s poll of the outbox's counts first finds it empty (`webhooks_per_s`, as
every run before this one measured it: it counts 0-0.1 s of the poll's own lag, and
the polled rate came out 3-5% lower in the runs of 5 December), and, given the fake
DingTalk, to the arrival there of the last call (`webhooks_per_s_to_last_call`: the
send's own `mark_sent` after it, well under a millisecond, is left out). The
client-side limits are raised (bench/common.py), so this measures the process, not the
limiter.

`python -m bench.drain` runs this row alone (about 30 s), against its own fake DingTalk
and `serve`, and prints its figures as JSON with the load average: what the changes of
issue #23 were measured with, alternating with the code before them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fakes.dingtalk import FakeDingTalk

from .common import cpu_s, serve_processes, threads_cpu_s, wait_drained
from .delivery import post_many
from .ingest import payload

IDLE_S = 10
WEBHOOKS = 2000
CONNS = 8
TIMEOUT_S = 120


def body(n: int) -> bytes:
    p = payload(10, tag=f"drain-{n}")
    p["groupKey"] = f'{{}}:{{alertname="HighLatency",drain="{n}"}}'
    return json.dumps(p).encode()


def post_all(url: str) -> int:
    return len(post_many([url], WEBHOOKS, CONNS, body))


def measure(
    url: str, arbiter: int, idle_s: float = IDLE_S, fake: FakeDingTalk | None = None
) -> dict[str, Any]:
    wait_drained(url, TIMEOUT_S)
    _, delivery = serve_processes(arbiter)
    assert delivery, "serve has no delivery process"
    before = threads_cpu_s(delivery)
    time.sleep(idle_s)
    idle = threads_cpu_s(delivery) - before
    for pid in delivery:
        os.kill(pid, signal.SIGSTOP)
    try:
        accepted = post_all(url)
    finally:
        for pid in delivery:
            os.kill(pid, signal.SIGCONT)
    before, start, thawed = cpu_s(delivery), time.monotonic(), time.time()
    drained = wait_drained(url, TIMEOUT_S)
    secs = time.monotonic() - start
    cpu = cpu_s(delivery) - before
    timed = {}
    if fake is not None:  # the fake notes each call's arrival on the wall clock
        calls = [r.received_at for r in fake.sends() if r.received_at >= thawed]
        last = max(calls, default=thawed) - thawed
        timed = {
            "calls": len(calls),
            "seconds_to_last_call": round(last, 3),
            "webhooks_per_s_to_last_call": round(accepted / last, 1) if last > 0 else 0.0,
        }
    return {
        "delivery_processes": len(delivery),
        "idle_s": idle_s,
        "idle_cpu_s": round(idle, 3),
        "webhooks": accepted,
        "drained": drained is not None,
        "seconds": round(secs, 2),
        "webhooks_per_s": round(accepted / secs, 1),
        "cpu_ms_per_webhook": round(1000 * cpu / max(accepted, 1), 3),
        **timed,
    }


def main() -> None:
    from receiver.settings import Settings
    from tests.procs import Serve

    from .common import ROOT, receiver_env, write_routing

    tmp = Path(tempfile.mkdtemp(prefix="dtr-drain-"))
    fake = FakeDingTalk().start()
    try:
        env = receiver_env(tmp / "data", fake.url, write_routing(tmp / "routing.yaml"))
        srv = Serve(env, tmp / "serve.log", workers=Settings.from_env().workers, cwd=ROOT)
        try:
            time.sleep(1)
            result = measure(srv.url, srv.proc.pid, fake=fake)
        finally:
            srv.stop()
        result["sent"] = len(fake.delivered())
        result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(result))
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        print(f"failed; logs are in {tmp}", file=sys.stderr)
        raise
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
