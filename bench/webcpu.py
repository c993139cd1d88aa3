"""Web CPU per accepted webhook, for several checkouts of the receiver side by side.

    .venv/bin/python -m bench.webcpu TREE[,TREE...] [ROUNDS] [SECONDS] [CONNECTIONS]

One `serve` per TREE (a git worktree: `git worktree add --detach /tmp/base main`), each
running that tree's code (its own directory first on the path), all up at once beside
one fake DingTalk. Each round posts row 1's 10-alert body to each in turn with wrk for
SECONDS, and prints the user + system CPU its gunicorn workers used, per request
(`/proc`), and the group commit's rows per commit; then it waits for that serve's
delivery to drain, and prints its delivery process's CPU from the run's start until
drained, per request (row 1's delivery share). Alternating in one sitting, several
rounds each, is what makes a difference of 0.1 ms visible on a shared 2-core machine,
where req/s alone is noise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fakes.dingtalk import FakeDingTalk
from tests.procs import Serve

from .common import ROOT, cpu_s, receiver_env, serve_processes, wait_drained, write_routing
from .ingest import batch_histogram, histogram_delta, payload


def wrk(url: str, body: Path, seconds: float, conns: int) -> int:
    """Requests wrk completed (non-2xx counted as errors and reported)."""
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "-s", str(ROOT / "bench/post.lua"),
           url + "/alertmanager", "--", str(body)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    r = json.loads(next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))[11:])
    if r["status"] + r["read"] + r["timeout"]:
        print(f"  errors: {r}", flush=True)
    return int(r["requests"])


def main(argv: list[str]) -> None:
    trees = [Path(t).resolve() for t in argv[0].split(",")]
    rounds, seconds, conns = (int(argv[1]) if len(argv) > 1 else 3,
                              float(argv[2]) if len(argv) > 2 else 5.0,
                              int(argv[3]) if len(argv) > 3 else 8)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="webcpu-"))
    body = tmp / "body.json"
    body.write_text(json.dumps(payload(10)))
    routing = write_routing(tmp / "routing.yaml")
    fake = FakeDingTalk().start()
    servers: dict[Path, Serve] = {}
    per_request: dict[Path, list[float]] = {t: [] for t in trees}
    per_delivery: dict[Path, list[float]] = {t: [] for t in trees}
    try:
        for i, tree in enumerate(trees):
            env = {**receiver_env(tmp / f"data-{i}", fake.url, routing), "PYTHONPATH": str(tree)}
            servers[tree] = Serve(env, tmp / f"serve-{i}.log", workers=2, cwd=tree)
        for srv in servers.values():  # warm up: imports, first connections
            wrk(srv.url, body, 1, conns)
            wait_drained(srv.url, 120)
        for r in range(rounds):
            for tree, srv in servers.items():
                web, dpids = serve_processes(srv.proc.pid)
                before, batches = cpu_s(web), batch_histogram(srv.url)
                before_delivery = cpu_s(dpids)
                n = wrk(srv.url, body, seconds, conns)
                ms = 1000 * (cpu_s(web) - before) / max(n, 1)
                d = histogram_delta(batch_histogram(srv.url), batches)
                commits = d.get(float("inf"), 0.0)
                rows = d.get(-1.0, 0.0) / commits if commits else float("nan")
                wait_drained(srv.url, 120)  # delivery's CPU: until all it accepted is done
                dms = 1000 * (cpu_s(dpids) - before_delivery) / max(n, 1)
                per_request[tree].append(ms)
                per_delivery[tree].append(dms)
                print(f"{tree.name:16s} round {r}: {n / seconds:6.0f} req/s, web CPU "
                      f"{ms:.3f} + delivery {dms:.3f} ms/request, {rows:.2f} rows/commit",
                      flush=True)  # fmt: skip
        for tree, v in per_request.items():
            for what, xs in (("web", v), ("delivery", per_delivery[tree])):
                s = sorted(xs)
                print(f"{tree.name:16s} {what:8s} median {s[len(s) // 2]:.3f} min {s[0]:.3f} "
                      f"ms/request (all: {', '.join(f'{x:.3f}' for x in xs)})")  # fmt: skip
    finally:
        for srv in servers.values():
            srv.stop()
        fake.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
