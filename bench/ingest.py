"""1. Ingest: POST /alertmanager (10 alerts) on a real `serve`, beside bare Flask, same gunicorn.

Both servers stay up for the whole measurement, and the runs alternate (bare, receiver,
bare, receiver) so that a noisy neighbour hurts both alike. Before every bare run the
receiver's delivery backlog is drained, so its delivery process is idle then.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from receiver.settings import Settings
from tests.procs import Serve, free_port, wait_http

from . import load
from .common import ROOT, cpu_s, receiver_env, serve_processes, serve_rss, wait_drained

ROUNDS = 2
THROUGHPUT_S = 6
CONNS = 8
MANY_CONNS = 32  # Alertmanager replicas x receivers x groups flushing at once, say
PACED_RATE = 200
PACED_S = 8
DRAIN_TIMEOUT_S = 90


def payload(n: int, tag: str = "ingest") -> dict[str, Any]:
    """An Alertmanager v4 group of n firing alerts, routed to the `db` receiver."""
    start = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighLatency",
                "team": "db",
                "severity": "critical",
                "instance": f"api-{i}:9100",
                "job": "api",
            },  # fmt: skip
            "annotations": {"summary": f"{tag} alert {i}: p99 latency above 2s"},
            "startsAt": start,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
            "fingerprint": f"{i:016x}",
        }
        for i in range(n)
    ]
    return {
        "receiver": "dingtalk", "status": "firing", "alerts": alerts,
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "team": "db", "severity": "critical"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}', "truncatedAlerts": 0,
    }  # fmt: skip


class BareFlask:
    def __init__(self, log_path: Path, workers: int, data_dir: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bareflask", "--listen", self.url[7:],
             "--workers", str(workers), "--data", str(data_dir)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_http(self.url + "/healthz", proc=self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def measure(tmp: Path, fake_url: str, routing: Path) -> dict[str, Any]:
    body = tmp / "ingest-10.json"
    body.write_text(json.dumps(payload(10)))
    workers = Settings.from_env().workers
    env = receiver_env(tmp / "ingest-data", fake_url, routing)
    bare = BareFlask(tmp / "bare.log", workers, tmp / "bare-data")
    srv = Serve(env, tmp / "serve-ingest.log", workers=workers, cwd=ROOT)
    names = ("bare", "durable", "receiver", "durable_many", "receiver_many")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    drains: list[float | None] = []
    batches: dict[str, list[dict[float, float]]] = {"receiver": [], "receiver_many": []}
    try:
        for url in (bare.url, srv.url):  # warm up both: imports, first connections
            load.run(url + "/alertmanager", body, 1, CONNS)
        drains.append(wait_drained(srv.url, DRAIN_TIMEOUT_S))
        bare_pids, _ = serve_processes(bare.proc.pid)
        web_pids, delivery_pids = serve_processes(srv.proc.pid)

        def bare_run(name: str, path: str, conns: int) -> None:
            before = cpu_s(bare_pids)
            runs[name].append(load.run(bare.url + path, body, THROUGHPUT_S, conns))
            runs[name][-1]["cpu_s"] = {"workers": cpu_s(bare_pids) - before}

        def receiver_run(name: str, conns: int) -> None:
            before, before_delivery = cpu_s(web_pids), cpu_s(delivery_pids)
            batches_before = batch_histogram(srv.url)
            runs[name].append(load.run(srv.url + "/alertmanager", body, THROUGHPUT_S, conns))
            web = cpu_s(web_pids) - before
            batches[name].append(histogram_delta(batch_histogram(srv.url), batches_before))
            drains.append(wait_drained(srv.url, DRAIN_TIMEOUT_S))  # delivery: all it accepted
            runs[name][-1]["cpu_s"] = {
                "workers": web, "delivery": cpu_s(delivery_pids) - before_delivery
            }  # fmt: skip

        for _ in range(ROUNDS):
            bare_run("bare", "/alertmanager", CONNS)
            bare_run("durable", "/durable", CONNS)
            receiver_run("receiver", CONNS)
        for _ in range(ROUNDS):  # enough posts at once to fill the group commit's batches
            bare_run("durable_many", "/durable", MANY_CONNS)
            receiver_run("receiver_many", MANY_CONNS)
        paced = {
            "bare": load.run(bare.url + "/alertmanager", body, PACED_S, CONNS, PACED_RATE),
            "receiver": load.run(srv.url + "/alertmanager", body, PACED_S, CONNS, PACED_RATE),
        }
        drains.append(wait_drained(srv.url, DRAIN_TIMEOUT_S))
        rss = {"receiver": serve_rss(srv.proc.pid), "bare": serve_rss(bare.proc.pid)}
    finally:
        srv.stop()
        bare.stop()

    def total(name: str) -> dict[str, Any]:
        rs = runs[name]
        reqs = sum(r["requests"] for r in rs)
        secs = sum(r["seconds"] for r in rs)
        cpu = {k: sum(r["cpu_s"][k] for r in rs) for k in rs[0]["cpu_s"]}
        return {
            "rps": round(reqs / secs, 1),
            # CPU per request, summed over the runs: unlike req/s, it does not depend on
            # how the connections fell between the workers, or on the neighbours.
            "cpu_ms_per_request": {k: round(1000 * v / reqs, 3) for k, v in cpu.items()},
            "p50_ms": max(r["p50_ms"] for r in rs),
            "p99_ms": max(r["p99_ms"] for r in rs),
            "requests": reqs,
            "errors": sum(r["errors"] for r in rs),
            "runs": rs,
        }

    bare_t, durable_t, recv_t = total("bare"), total("durable"), total("receiver")
    many_t, durable_many_t = total("receiver_many"), total("durable_many")
    return {
        "generator": load.generator(),
        "workers": workers,
        "connections": CONNS,
        "alerts_per_request": 10,
        "throughput": {
            "bare": bare_t,
            "receiver": recv_t,
            "ratio": round(recv_t["rps"] / bare_t["rps"], 3),
            "durable": durable_t,
            "ratio_durable": round(recv_t["rps"] / durable_t["rps"], 3),
            "cpu_ratio": round(cpu_ms(bare_t) / cpu_ms(recv_t), 3),
        },  # fmt: skip
        "paced": {"rate": PACED_RATE, **paced},
        "batch_rows": batch_summary(batches["receiver"]),
        "many": {
            "connections": MANY_CONNS,
            "receiver": many_t,
            "durable": durable_many_t,
            "ratio_durable": round(many_t["rps"] / durable_many_t["rps"], 3),
            "batch_rows": batch_summary(batches["receiver_many"]),
        },
        "drain_s": drains,
        "rss_mb_after": rss,
    }


def cpu_ms(totals: dict[str, Any]) -> float:
    """CPU ms per request of a server's processes: its workers, and delivery if it has one."""
    return float(sum(totals["cpu_ms_per_request"].values()))


BATCH_METRIC = "dingtalk_receiver_commit_batch_rows"


def batch_histogram(url: str) -> dict[float, float]:
    """The group commit's batch-size histogram from /metrics (summed over the workers):
    cumulative count per bucket bound, with `sum` under the key -1."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as res:
            text = res.read().decode()
    except OSError:
        return {}
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(BATCH_METRIC + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(BATCH_METRIC + "_sum"):
            out[-1.0] = float(line.rsplit(" ", 1)[1])
    return out


def histogram_delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def batch_summary(runs: list[dict[float, float]]) -> dict[str, Any] | None:
    """Rows per commit over the max-load runs: mean (exact), p50 and max (bucket bounds)."""
    total: dict[float, float] = {}
    for run in runs:
        for k, v in run.items():
            total[k] = total.get(k, 0.0) + v
    count = total.get(float("inf"), 0.0)
    if not count:
        return None  # no such metric: code without group commit
    bounds = sorted(k for k in total if k >= 0)
    p50 = next(b for b in bounds if total[b] >= count / 2)
    top = next(b for b in bounds if total[b] >= count)
    return {"commits": int(count), "mean": round(total[-1.0] / count, 2), "p50": p50, "max": top}
