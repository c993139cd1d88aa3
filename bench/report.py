"""The table `make bench` prints, and the issue's targets checked against the figures."""

from __future__ import annotations

from typing import Any

from . import replicas


def drain_rate(d: dict[str, Any]) -> float:
    """Row 7's drain rate: timed to the last call's arrival at the fake DingTalk, or
    (results from before this measure was added, or without the fake) to the 0.1-s poll."""
    return float(d.get("webhooks_per_s_to_last_call") or d.get("webhooks_per_s") or 0)


def _f(x: Any, nd: int = 1) -> str:
    if x is None:
        return "-"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _batches(b: dict[str, Any] | None) -> str:
    if not b:
        return "-"
    return f"{_f(b['mean'], 2)}/{_f(b['p50'], 0)}/{_f(b['max'], 0)} ({b['commits']} commits)"


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    ing, a2d, storm, dr = r["ingest"], r["accept_to_delivery"], r["storm"], r["drain"]
    workers = [w for w in r["memory"]["after_storm"]["workers"] + r["memory"]["idle"]["workers"]]
    workers += r["ingest"]["rss_mb_after"]["receiver"]["workers"]
    rows = [
        ("ingest throughput vs bare Flask + fsynced insert", ">= 1.5x",
         ing["throughput"]["ratio_durable"], ing["throughput"]["ratio_durable"] >= 1.5),
        (f"ingest throughput vs bare + insert, {ing['many']['connections']} connections",
         ">= 1.5x", ing["many"]["ratio_durable"], ing["many"]["ratio_durable"] >= 1.5),
        (f"ingest p99 at {ing['paced']['rate']} req/s", "< 10 ms",
         ing["paced"]["receiver"]["p99_ms"], ing["paced"]["receiver"]["p99_ms"] < 10),
        (f"accept->delivery p50 at {a2d['steady']['rate']} alerts/s", "< 15 ms",
         a2d["steady"]["p50_ms"], a2d["steady"]["p50_ms"] < 15),
        (f"delivery idle CPU over {dr['idle_s']} s", "< 0.05 s (0.5% of a core)",
         dr["idle_cpu_s"], dr["idle_cpu_s"] < 0.05),
        ("delivery CPU per 10-alert webhook (drain)", "<= 1.0 ms", dr["cpu_ms_per_webhook"],
         dr["cpu_ms_per_webhook"] <= 1.0),
        ("delivery drain, webhooks/s to the last call: 1 process, 2 processes", ">= 1000",
         f"{drain_rate(dr)}, {drain_rate(r.get('drain2', {})) or '-'}",
         max(drain_rate(dr), drain_rate(r.get("drain2", {}))) >= 1000),
        ("DingTalk calls per storm", "= lower bound", f"{storm['calls']} vs {storm['lower_bound']}",
         storm["calls"] == storm["lower_bound"]),
        ("routing, 1,000-route nested tree", "< 100 us/alert",
         r["routing"]["nested"]["tree_us_per_alert"],
         r["routing"]["nested"]["tree_us_per_alert"] < 100),
        ("routing, 1,000 routes flat under the root", "< 100 us/alert",
         r["routing"]["flat"]["tree_us_per_alert"],
         r["routing"]["flat"]["tree_us_per_alert"] < 100),
        ("worker RSS (largest seen)", "< 80 MB", max(w for w in workers if w),
         max(w for w in workers if w) < 80),
    ]  # fmt: skip
    return [{"name": n, "target": t, "value": v, "met": bool(m)} for n, t, v, m in rows]


def table(r: dict[str, Any]) -> str:
    ing, a2d, st, rt, rd = (r[k] for k in
        ("ingest", "accept_to_delivery", "storm", "routing", "render"))  # fmt: skip
    mem, dr = r["memory"], r["drain"]
    th, pc, mn = ing["throughput"], ing["paced"], ing["many"]
    dk = r["disk"]
    bare_rss = ing["rss_mb_after"]["bare"]["workers"]
    rows: list[tuple[str, str, str, str]] = [
        ("measurement", "receiver", "baseline", "ratio"),
        ("1 ingest req/s (10 alerts, max load)", _f(th["receiver"]["rps"]),
         _f(th["bare"]["rps"]) + " bare Flask", _f(th["ratio"], 3)),
        ("1 ingest req/s, vs bare Flask + fsynced insert", _f(th["receiver"]["rps"]),
         _f(th["durable"]["rps"]) + " bare + insert", _f(th["ratio_durable"], 3)),
        ("1 CPU ms per request: web workers + delivery",
         "+".join(_f(v, 3) for v in th["receiver"]["cpu_ms_per_request"].values()),
         f"{_f(th['bare']['cpu_ms_per_request']['workers'], 3)} bare, "
         f"{_f(th['durable']['cpu_ms_per_request']['workers'], 3)} + insert",
         _f(th["cpu_ratio"], 3)),
        ("1 ingest p50/p99 ms at max load",
         f"{_f(th['receiver']['p50_ms'])}/{_f(th['receiver']['p99_ms'])}",
         f"{_f(th['bare']['p50_ms'])}/{_f(th['bare']['p99_ms'])}", ""),
        (f"1 ingest p50/p99 ms at {pc['rate']} req/s",
         f"{_f(pc['receiver']['p50_ms'])}/{_f(pc['receiver']['p99_ms'])}",
         f"{_f(pc['bare']['p50_ms'])}/{_f(pc['bare']['p99_ms'])}", ""),
        ("1 group commit: rows per commit, max load", _batches(ing.get("batch_rows")),
         "mean/p50/max", ""),
        (f"1 ingest req/s, {mn['connections']} connections, vs bare + insert",
         _f(mn["receiver"]["rps"]), _f(mn["durable"]["rps"]) + " bare + insert",
         _f(mn["ratio_durable"], 3)),
        (f"1 group commit: rows per commit, {mn['connections']} connections",
         _batches(mn.get("batch_rows")), "mean/p50/max", ""),
        ("1 floor: one SQLite commit p50/p99 ms", f"{_f(dk['full']['p50_ms'], 2)}/"
         f"{_f(dk['full']['p99_ms'], 2)} FULL", f"{_f(dk['normal']['p50_ms'], 2)}/"
         f"{_f(dk['normal']['p99_ms'], 2)} NORMAL", ""),
        (f"2 accept->delivery p50/p99 ms, {a2d['steady']['rate']}/s",
         f"{_f(a2d['steady']['p50_ms'])}/{_f(a2d['steady']['p99_ms'])}", "", ""),
        (f"2 accept->delivery p50/p99 ms, burst {a2d['burst']['alerts']}",
         f"{_f(a2d['burst']['p50_ms'])}/{_f(a2d['burst']['p99_ms'])}",
         f"accepted in {_f(a2d['burst']['accept_s'])} s", ""),
        (f"3 asyncsend_v2 calls, {st['groups']} groups -> {st['recipients']} people",
         str(st["calls"]), f"{st['lower_bound']} lower bound",
         _f(st["calls"] / st["lower_bound"], 2)),
        (f"4 routing us/alert, {rt['nested']['routes']} routes nested",
         _f(rt["nested"]["tree_us_per_alert"]), _f(rt["nested"]["linear_us_per_alert"]) + " linear",
         _f(rt["nested"]["speedup_vs_linear"], 2) + "x faster"),
        (f"4 routing us/alert, {rt['flat']['routes']} routes flat",
         _f(rt["flat"]["tree_us_per_alert"]), _f(rt["flat"]["linear_us_per_alert"]) + " linear",
         _f(rt["flat"]["speedup_vs_linear"], 2) + "x faster"),
        (f"5 render {rd['alerts']} alerts: ms, bytes", f"{_f(rd['ms_per_render'], 2)}, "
         f"{rd['msg_bytes']}", f"{rd['budget_bytes']} budget; 1 alert "
         f"{_f(rd['ms_per_render_1_alert'], 3)} ms", ""),
        ("6 RSS MB per worker, idle / after storm",
         f"{'+'.join(map(_f, mem['idle']['workers']))} / "
         f"{'+'.join(map(_f, mem['after_storm']['workers']))}",
         f"{'+'.join(map(_f, bare_rss))} bare Flask", ""),
        ("6 RSS MB delivery, idle / after storm",
         f"{_f(mem['idle']['delivery'])} / {_f(mem['after_storm']['delivery'])}", "", ""),
        (f"7 delivery CPU s idle over {dr['idle_s']} s", _f(dr["idle_cpu_s"], 3), "", ""),
        (f"7 delivery drain of {dr['webhooks']} webhooks: /s, CPU ms each",
         f"{_f(drain_rate(dr))}, {_f(dr['cpu_ms_per_webhook'], 3)}",
         f"each its own group, all sent; {_f(dr['webhooks_per_s'])}/s polled", ""),
    ]  # fmt: skip
    if "drain2" in r:
        d2 = r["drain2"]
        rows.append((f"7 the same, RECEIVER_DELIVERY_PROCESSES={d2['delivery_processes']}",
                     f"{_f(drain_rate(d2))}, {_f(d2['cpu_ms_per_webhook'], 3)}",
                     f"{_f(drain_rate(dr))}, {_f(dr['cpu_ms_per_webhook'], 3)} 1 process;"
                     f" {_f(d2['webhooks_per_s'])}/s polled",
                     f"{drain_rate(d2) / drain_rate(dr):.2f}"))  # fmt: skip
    rows += replicas.rows(r.get("replicas"))  # row 8: PostgreSQL
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines += ["", "targets:"]
    for t in r["targets"]:
        mark = "met   " if t["met"] else "MISSED"
        lines.append(f"  {mark} {t['name']}: {t['value']} (target {t['target']})")
    m = r["machine"]
    lines.append(f"\nmachine: {m['nproc']} x {m['cpu_model']}, load at start "
                 f"{'/'.join(f'{x:.2f}' for x in m['loadavg_at_start'])}; "
                 f"load generator: {r['generator']}")  # fmt: skip
    return "\n".join(lines)
