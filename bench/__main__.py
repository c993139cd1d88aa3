"""`make bench`: run every measurement, print the table, write bench/results.json."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receiver.settings import Settings
from tests.fakes.dingtalk import FakeDingTalk
from tests.procs import Serve

from . import delivery, disk, drain, ingest, load, render, replicas, report, routing, storm
from .bareflask import serve_options
from .common import ROOT, machine, receiver_env, serve_rss, write_routing

RESULTS = Path(__file__).resolve().parent / "results.json"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main() -> None:
    if not load.WRK:
        say("wrk is missing (Debian: apt-get install wrk); using the Python generator instead")
    tmp = Path(tempfile.mkdtemp(prefix="dtr-bench-"))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "generator": load.generator(),
        # worker_class is a class: recorded by its name
        "gunicorn": {
            k: getattr(v, "__name__", v)
            for k, v in serve_options().items()
            if k != "logconfig_dict"
        },
    }
    fake = FakeDingTalk().start()
    routing_file = write_routing(tmp / "routing.yaml")
    try:
        say("4 routing: 1,000-route trees, 10,000 label sets")
        results["routing"] = routing.measure(tmp)
        say("5 render: a 500-alert group")
        results["render"] = render.measure()
        say("1 ingest floor: one durable SQLite commit on this disk")
        results["disk"] = disk.measure(tmp)
        say("1 ingest: receiver and bare Flask, alternating (about a minute)")
        results["ingest"] = ingest.measure(tmp, fake.url, routing_file)
        env = receiver_env(tmp / "data", fake.url, routing_file)
        srv = Serve(env, tmp / "serve.log", workers=Settings.from_env().workers, cwd=ROOT)
        try:
            time.sleep(1)
            idle = serve_rss(srv.proc.pid)
            say("2 accept to delivery: steady, then a burst")
            results["accept_to_delivery"] = delivery.measure(srv.url, fake)
            say("3 DingTalk calls per storm")
            results["storm"] = storm.measure(srv.url, fake, routing_file)
            results["memory"] = {"idle": idle, "after_storm": serve_rss(srv.proc.pid)}
            say("7 delivery alone: idle CPU, then a backlog of 2,000 webhooks drained")
            results["drain"] = drain.measure(srv.url, srv.proc.pid, fake=fake)
        finally:
            srv.stop()
        say("7 the same drain with RECEIVER_DELIVERY_PROCESSES=2")
        env2 = {**receiver_env(tmp / "data2", fake.url, routing_file),
                "RECEIVER_DELIVERY_PROCESSES": "2"}  # fmt: skip
        srv = Serve(env2, tmp / "serve2.log", workers=Settings.from_env().workers, cwd=ROOT)
        try:
            time.sleep(1)
            results["drain2"] = drain.measure(srv.url, srv.proc.pid, idle_s=1, fake=fake)
        finally:
            srv.stop()
        say("8 PostgreSQL: ingest beside SQLite, a drain with 1 and 2 replicas (about a minute)")
        results["replicas"] = replicas.measure(tmp, fake.url, routing_file)
    except BaseException:
        say(f"failed; logs are in {tmp}")
        raise
    finally:
        fake.stop()
    results["targets"] = report.targets(results)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(report.table(results))
    print(f"\nwritten: {RESULTS.relative_to(ROOT)}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
