"""8. PostgreSQL: ingest beside SQLite in the same run, and a delivery drain with 1 and 2 replicas.

A throwaway PostgreSQL (tests/pg.py: Debian's initdb and pg_ctl, a temp dir, loopback)
runs *durable*, as in production: fsync and synchronous commits on, so a 2xx means
the alert is on disk in both engines.

Ingest: row 1's load (wrk, bench/post.lua, the same 10-alert body, 8 connections as
fast as they go) on two `serve`s that stay up together, one on SQLite and one with
RECEIVER_DATABASE_URL set; the runs alternate (SQLite, PostgreSQL, SQLite,
PostgreSQL), and each server's delivery backlog is drained after its run. CPU per
request is its web workers' during the run plus its delivery process's until drained,
plus, on PostgreSQL, the database server's over the same time.

Drain: row 7's (delivery frozen with SIGSTOP, WEBHOOKS 10-alert webhooks accepted,
each its own alert group, then thawed and timed until the outbox is empty): on
SQLite, on PostgreSQL with one replica, and with two replicas sharing one database,
the webhooks posted to both in turn. CPU is that of every delivery process, and
the database server's beside it.

Connections: the most client connections PostgreSQL had open to the database at
once (pg_stat_activity, sampled every 0.2 s) during each phase.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from receiver.settings import Settings
from tests.pg import PostgresServer, remove, start_server
from tests.procs import Serve

from . import load
from .common import ROOT, cpu_s, receiver_env, serve_processes, wait_drained
from .delivery import post_many
from .ingest import payload
from .pgwatch import Connections, DatabaseCpu

ROUNDS = 2
THROUGHPUT_S = 2  # row 1 runs 6 s; this row must stay within about a minute
CONNS = 8
WEBHOOKS = 500
TIMEOUT_S = 90


def measure(tmp: Path, fake_url: str, routing: Path) -> dict[str, Any]:
    """Every figure of row 8, or {"skipped": why} when no PostgreSQL can be started."""
    try:
        server = start_server(durable=True)
    except (OSError, RuntimeError, KeyError) as e:  # no initdb; no postgres user (root)
        return {"skipped": (str(e).strip().splitlines() or [type(e).__name__])[0]}
    try:
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as db:
            version = str(db.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            for name in ("ingest", "drain1", "drain2"):
                db.execute(f"CREATE DATABASE {name}")
        workers = Settings.from_env().workers
        return {
            "postgres": {"version": version, "fsync": True, "synchronous_commit": True},
            "workers": workers,
            "ingest": ingest(tmp, fake_url, routing, server, workers),
            "drain": drains(tmp, fake_url, routing, server, workers),
        }
    finally:
        remove(server)


def ingest(
    tmp: Path, fake_url: str, routing: Path, server: PostgresServer, workers: int
) -> dict[str, Any]:
    body = tmp / "pg-ingest-10.json"
    body.write_text(json.dumps(payload(10)))
    sqlite_env = {**receiver_env(tmp / "pg-ingest-sqlite", fake_url, routing),
                  "RECEIVER_DATABASE_URL": ""}  # fmt: skip
    pg_env = {**receiver_env(tmp / "pg-ingest-pg", fake_url, routing),
              "RECEIVER_DATABASE_URL": server.url_for("ingest")}  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
    servers = {
        "sqlite": Serve(sqlite_env, tmp / "serve-pg-ingest-sqlite.log", workers=workers, cwd=ROOT),
        "postgresql": Serve(pg_env, tmp / "serve-pg-ingest-pg.log", workers=workers, cwd=ROOT),
    }
    try:
        with Connections(server, "ingest").watching() as conns:
            for srv in servers.values():  # warm up both: imports, first connections
                load.run(srv.url + "/alertmanager", body, 1, CONNS)
                wait_drained(srv.url, TIMEOUT_S)
            for _ in range(ROUNDS):
                for name, srv in servers.items():
                    web, dpids = serve_processes(srv.proc.pid)
                    before, before_d, db = cpu_s(web), cpu_s(dpids), DatabaseCpu(server)
                    run = load.run(srv.url + "/alertmanager", body, THROUGHPUT_S, CONNS)
                    run["cpu_s"] = {"workers": cpu_s(web) - before}
                    run["drain_s"] = wait_drained(srv.url, TIMEOUT_S)
                    run["cpu_s"]["delivery"] = cpu_s(dpids) - before_d
                    if name == "postgresql":
                        run["cpu_s"]["postgres"] = db.used()
                    runs[name].append(run)
    finally:
        for srv in servers.values():
            srv.stop()
    sq, pg = _total(runs["sqlite"]), _total(runs["postgresql"])
    return {
        "connections": CONNS,
        "sqlite": sq,
        "postgresql": pg,
        "ratio": round(pg["rps"] / sq["rps"], 3) if sq["rps"] else None,
        "cpu_ratio": round(_cpu_ms(pg) / _cpu_ms(sq), 3) if _cpu_ms(sq) else None,
        "pg_connections_max": conns.most,
    }


def _total(rs: list[dict[str, Any]]) -> dict[str, Any]:
    reqs = sum(r["requests"] for r in rs)
    cpu = {k: sum(r["cpu_s"][k] for r in rs) for k in rs[0]["cpu_s"]}
    return {
        "rps": round(reqs / sum(r["seconds"] for r in rs), 1),
        "cpu_ms_per_request": {k: round(1000 * v / max(reqs, 1), 3) for k, v in cpu.items()},
        "p50_ms": max(r["p50_ms"] for r in rs),
        "p99_ms": max(r["p99_ms"] for r in rs),
        "requests": reqs,
        "errors": sum(r["errors"] for r in rs),
        "runs": rs,
    }


def _cpu_ms(t: dict[str, Any]) -> float:
    return float(sum(t["cpu_ms_per_request"].values()))


def drains(
    tmp: Path, fake_url: str, routing: Path, server: PostgresServer, workers: int
) -> dict[str, Any]:
    out = {}
    for phase, dbname, replicas in (("sqlite", None, 1), ("postgresql_1", "drain1", 1),
                                    ("postgresql_2", "drain2", 2)):  # fmt: skip
        envs = [{**receiver_env(tmp / f"pg-{phase}-{i}", fake_url, routing),
                 "RECEIVER_DATABASE_URL": server.url_for(dbname) if dbname else ""}
                for i in range(replicas)]  # fmt: skip
        srvs: list[Serve] = []
        try:
            for i, env in enumerate(envs):
                srvs.append(
                    Serve(env, tmp / f"serve-pg-{phase}-{i}.log", workers=workers, cwd=ROOT)
                )
            if dbname:
                with Connections(server, dbname).watching() as conns:
                    out[phase] = drain(phase, srvs, server)
                out[phase]["pg_connections_max"] = conns.most
            else:
                out[phase] = drain(phase, srvs, server)
        finally:
            for srv in srvs:
                srv.stop()
    return out


def drain(phase: str, srvs: list[Serve], server: PostgresServer) -> dict[str, Any]:
    """Freeze every replica's delivery, accept WEBHOOKS across them, thaw, time the drain."""
    for srv in srvs:
        wait_drained(srv.url, TIMEOUT_S)
    time.sleep(1)  # every delivery process past its start, asleep
    deliveries = [d for srv in srvs for d in serve_processes(srv.proc.pid)[1]]
    assert len(deliveries) >= len(srvs), "a serve has no delivery process"
    for pid in deliveries:
        os.kill(pid, signal.SIGSTOP)
    try:
        accepted = post_all([srv.url for srv in srvs], phase)
    finally:
        for pid in deliveries:
            os.kill(pid, signal.SIGCONT)
    before, start, db = cpu_s(deliveries), time.monotonic(), DatabaseCpu(server)
    drained = wait_drained(srvs[0].url, TIMEOUT_S)  # PostgreSQL: every replica's counts
    secs = time.monotonic() - start
    cpu, db_cpu = cpu_s(deliveries) - before, db.used()
    return {
        "replicas": len(srvs),
        "webhooks": accepted,
        "drained": drained is not None,
        "seconds": round(secs, 2),
        "webhooks_per_s": round(accepted / secs, 1),
        "cpu_ms_per_webhook": round(1000 * cpu / max(accepted, 1), 3),
        # the database server's, from the thaw until drained (SQLite: none, it is in-process)
        "postgres_cpu_ms_per_webhook": round(1000 * db_cpu / max(accepted, 1), 3),
    }


def body(phase: str, n: int) -> bytes:
    p = payload(10, tag=f"{phase}-{n}")
    p["groupKey"] = f'{{}}:{{alertname="HighLatency",drain="{phase}-{n}"}}'
    return json.dumps(p).encode()


def post_all(urls: list[str], phase: str) -> int:
    """WEBHOOKS webhooks from CONNS connections, spread over the replicas in turn."""
    return len(post_many(urls, WEBHOOKS, CONNS, lambda n: body(phase, n)))


def rows(r: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """Row 8 of the table: four columns, as report.table prints them."""
    if r is None:
        return []
    if "skipped" in r:
        return [("8 PostgreSQL rows", "skipped", r["skipped"], "")]
    ing, dr = r["ingest"], r["drain"]
    sq, pg = ing["sqlite"], ing["postgresql"]
    one, two, lite = dr["postgresql_1"], dr["postgresql_2"], dr["sqlite"]

    def cpu(t: dict[str, Any]) -> str:
        return "+".join(f"{v:.3f}" for v in t["cpu_ms_per_request"].values())

    def per(d: dict[str, Any]) -> str:
        db = f"+{d['postgres_cpu_ms_per_webhook']:.3f}" if "pg_connections_max" in d else ""
        return f"{d['webhooks_per_s']:.1f}, {d['cpu_ms_per_webhook']:.3f}{db}"

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.3f}" if b else "-"

    return [
        ("8 ingest req/s on PostgreSQL (row 1's load)", f"{pg['rps']:.1f}",
         f"{sq['rps']:.1f} SQLite", f"{ing['ratio']}"),
        ("8 CPU ms per request: web + delivery (+ PostgreSQL)", cpu(pg), cpu(sq) + " SQLite",
         f"{ing['cpu_ratio']}"),
        ("8 ingest p50/p99 ms at max load on PostgreSQL", f"{pg['p50_ms']:.1f}/{pg['p99_ms']:.1f}",
         f"{sq['p50_ms']:.1f}/{sq['p99_ms']:.1f} SQLite", ""),
        (f"8 drain of {one['webhooks']}, PostgreSQL 1 replica: /s, CPU ms (+PG)", per(one),
         per(lite) + " SQLite", ratio(one["webhooks_per_s"], lite["webhooks_per_s"])),
        (f"8 drain of {two['webhooks']}, PostgreSQL 2 replicas: /s, CPU ms (+PG)", per(two),
         per(one) + " 1 replica", ratio(two["webhooks_per_s"], one["webhooks_per_s"])),
        ("8 PostgreSQL connections, most at once", f"{ing['pg_connections_max']} ingest, "
         f"{one['pg_connections_max']} drain", f"{two['pg_connections_max']} with 2 replicas", ""),
    ]  # fmt: skip


def main() -> None:
    """`python -m bench.replicas`: row 8 alone, printed, results.json left as it is."""
    import shutil
    import tempfile

    from tests.fakes.dingtalk import FakeDingTalk

    from .common import machine, write_routing

    tmp = Path(tempfile.mkdtemp(prefix="dtr-bench-pg-"))
    fake = FakeDingTalk().start()
    try:
        r = measure(tmp, fake.url, write_routing(tmp / "routing.yaml"))
    finally:
        fake.stop()
    print(json.dumps({"machine": machine(), "replicas": r}, indent=2))
    for row in rows(r):
        print("  ".join(row))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
