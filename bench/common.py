"""What every measurement shares: the machine, percentiles, RSS, the routing under test."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.fakes.dingtalk import APP_KEY, APP_SECRET

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "loadavg_at_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def serve_processes(arbiter: int) -> tuple[list[int], list[int]]:
    """The gunicorn workers under `arbiter`, and serve's delivery processes."""
    from tests.procs import descendants

    kids = descendants(arbiter)
    delivery = [p for p in kids if " deliver " in cmdline(p) + " "]
    return [p for p in kids if p not in delivery], delivery


def cpu_s(pids: list[int]) -> float:
    """User plus system CPU seconds the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def threads_cpu_s(pids: list[int]) -> float:
    """The same to the nanosecond, summed over the processes' live threads (each one's
    /proc/PID/task/TID/schedstat): for a short, near-idle window, where cpu_s counts in
    10-ms clock ticks. A thread that ends meanwhile takes its time with it."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


def serve_rss(arbiter: int) -> dict[str, Any]:
    """RSS of a gunicorn arbiter, each of its workers, and serve's delivery process."""
    workers, deliveries = serve_processes(arbiter)
    delivery = deliveries[0] if deliveries else None
    return {
        "arbiter": rss_mb(arbiter),
        "workers": [rss_mb(p) for p in workers],
        "delivery": rss_mb(delivery) if delivery else None,
    }


def receiver_env(data_dir: Path, fake_url: str, routing: Path) -> dict[str, str]:
    return {
        "DINGTALK_APP_KEY": APP_KEY,
        "DINGTALK_APP_SECRET": APP_SECRET,
        "DINGTALK_APP_AGENT_ID": "424242",
        "DINGTALK_API_BASE": fake_url,
        "RECEIVER_DATA_DIR": str(data_dir),
        "RECEIVER_ROUTING": str(routing),
        "RECEIVER_TEMPLATES": str(TEMPLATES),
        # The fake has no limits. The client-side ones (10 calls/s, 5,000 recipients a
        # minute, 500 messages a person a day: DingTalk's own) would otherwise be all
        # that rows 1-3 measure, and a storm would be held until tomorrow. The rate sits
        # far above row 7's target of 1,000 webhooks/s: at 1,000 (until 5 December) a
        # drain that reached the target would have been held to it.
        "RECEIVER_SEND_RATE": "100000",
        "RECEIVER_RECIPIENTS_PER_MINUTE": "10000000",
        "RECEIVER_USER_DAILY_LIMIT": "10000000",
        # The load tools replay one body: with the HA de-duplication on, every post after
        # the first would be a duplicate, not stored, and ingest would measure that instead.
        "RECEIVER_DEDUP_WINDOW": "0",
    }


def outbox_counts(url: str) -> dict[str, int]:
    """The outbox counts from /readyz, which reports them even when it answers 503."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=10) as res:
            body = json.loads(res.read())
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
    return {k: v for k, v in body["outbox"].items() if k != "ok"}


def wait_drained(url: str, timeout: float) -> float | None:
    """Seconds until nothing is pending, queued, sending or retrying; None if not in time."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        c = outbox_counts(url)
        if c["pending"] + c["queued"] + c["sending"] + c["retry"] == 0:
            return time.monotonic() - start
        time.sleep(0.1)
    return None


# Storm recipients: five teams of 40 people, and an SRE rota of 120 that overlaps them.
TEAMS = 5
TEAM_SIZE = 40
SRE = [f"u{i:03d}" for i in range(180, 300)]


def team_users(k: int) -> list[str]:
    return [f"u{i:03d}" for i in range(k * TEAM_SIZE, (k + 1) * TEAM_SIZE)]


def write_routing(path: Path) -> Path:
    """The table every `serve` in the bench runs: the ingest/latency route and the storm's."""
    users = sorted({u for k in range(TEAMS) for u in team_users(k)} | set(SRE))
    lines = ["users:", "  alice: manager4220", "  bob: user0002"]
    lines += [f"  {u}: {u}" for u in users]
    lines += ["receivers:", "  - {name: ops, users: [alice]}", "  - {name: db, users: [bob]}"]
    for k in range(TEAMS):
        lines.append(f"  - {{name: team-{k}, users: [{', '.join(team_users(k))}]}}")
    lines.append(f"  - {{name: sre, users: [{', '.join(SRE)}]}}")
    lines += ["route:", "  receiver: ops", "  routes:"]
    lines += ["    - {matchers: ['team=\"db\"', 'severity=~\"critical|page\"'], receiver: db}"]
    for k in range(TEAMS):
        lines.append(
            f"    - {{matchers: ['team=\"team-{k}\"'], receiver: team-{k}, continue: true}}"
        )
    lines.append("    - {matchers: ['team=~\"team-.*\"', 'severity=\"critical\"'], receiver: sre}")
    path.write_text("\n".join(lines) + "\n")
    return path
