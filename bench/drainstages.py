"""Row 7's drain in process, and the CPU of each stage of it.

    .venv/bin/python -m bench.drainstages [--stages] [WEBHOOKS]

The delivery process's own worker (`make_delivery`, as `serve` builds it, without its
other threads, its wake-up socket and the INFO log lines) drains WEBHOOKS (2,000) of
row 7's 10-alert webhooks, each its own group, accepted beforehand, against a fake
DingTalk in another process. No gunicorn, no SIGSTOP: on the shared 2-core machine
its CPU per webhook (`time.process_time`) varies about ±2% in a sitting, where row 7
(`python -m bench.drain`) varies ±5%, so two checkouts alternated a few times each
show a 2-3% change. `--stages` also times each stage on this thread's CPU clock
(`time.thread_time`, about 1 µs a call added): what a webhook costs where, in the
loop as it runs, not in a loop of one stage alone (which is 2-3 times cheaper: the
caches are warm). Prints JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .common import ROOT, receiver_env, write_routing
from .drain import body

FAKE = (
    "import sys, time; from tests.fakes.dingtalk import FakeDingTalk;"
    " f = FakeDingTalk().start(); print(f.url, flush=True); time.sleep(3600)"
)


def timed(spent: dict[str, list[float]], obj: Any, name: str, label: str = "") -> None:
    """Wrap obj.name so that each call's CPU (this thread's) is noted under `label`."""
    inner = getattr(obj, name)
    calls = spent.setdefault(label or name, [])

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            calls.append(time.thread_time() - t)

    setattr(obj, name, wrapper)


def stages(worker: Any, spent: dict[str, list[float]]) -> None:
    import receiver.delivery.planner as planner_module

    planner = worker.plan.__self__
    timed(spent, planner, "prepare", "plan: route and render (prepare)")
    box = SimpleNamespace(parse=planner_module.PARSERS["alertmanager"])
    timed(spent, box, "parse", "plan: parse the stored body")
    planner_module.PARSERS["alertmanager"] = box.parse
    timed(spent, planner_module, "split_by_receiver", "plan: route (split_by_receiver)")
    timed(spent, planner_module, "plan", "plan: render (pipeline.plan)")
    timed(spent, worker.outbox, "due_pending", "plan: read pending")
    timed(spent, worker.outbox, "expand_many", "plan: write items (expand_many)")
    timed(spent, worker.outbox, "claim", "send: claim")
    timed(spent, worker.limits, "admit", "send: limits admit")
    timed(spent, worker.outbox, "start_call", "send: start_call")
    timed(spent, worker.sender, "async_send", "send: the DingTalk call")
    timed(spent, worker.outbox, "mark_sent", "send: mark_sent")
    timed(spent, worker.limits, "count_sent", "send: limits count_sent")
    timed(spent, worker, "handle", "send: one item (handle)")


def backlog(url: str, n: int, prefix: str, **env: str) -> tuple[Any, Any]:
    """Settings for a data dir of its own (the DingTalk at `url`, `env` added), and its
    outbox with row 7's first `n` webhooks accepted, each its own group (not measured)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(receiver_env(tmp / "data", url, write_routing(tmp / "routing.yaml")))
    os.environ.update(env)
    from receiver.delivery.outbox import Outbox
    from receiver.settings import Settings

    settings = Settings.from_env()
    os.makedirs(settings.data_dir, exist_ok=True)
    accept = Outbox(settings.data_dir, synchronous="OFF")
    for i in range(n):
        accept.accept(body(i), source="alertmanager", receiver=None, group_key=f"g{i}")
    return settings, accept


def main(argv: list[str]) -> None:
    with_stages = "--stages" in argv
    args = [a for a in argv if not a.startswith("--")]
    n = int(args[0]) if args else 2000
    fake = subprocess.Popen([sys.executable, "-c", FAKE], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        url = (fake.stdout.readline() if fake.stdout else "").strip()
        settings, accept = backlog(url, n, "dtr-drainstages-")
        from receiver.delivery.process import make_delivery, settle_heap

        worker, _ = make_delivery(settings)
        worker.wakeup = None
        spent: dict[str, list[float]] = {}
        if with_stages:
            stages(worker, spent)
        settle_heap()
        cpu, wall, times = time.process_time(), time.perf_counter(), os.times()
        while worker.run_once():
            pass
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        after = os.times()
        counts = accept.counts()
        result: dict[str, Any] = {
            "webhooks": n,
            "sent": counts.get("sent", 0),
            "cpu_ms_per_webhook": round(1000 * cpu / n, 3),
            "user_ms": round(1000 * (after.user - times.user) / n, 3),
            "system_ms": round(1000 * (after.system - times.system) / n, 3),
            "wall_ms_per_webhook": round(1000 * wall / n, 3),
            "webhooks_per_s": round(n / wall, 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        if spent:
            result["stages_us_per_webhook"] = {
                k: round(1e6 * sum(v) / n, 1) for k, v in spent.items() if v
            }
        print(json.dumps(result, indent=1 if spent else None))
    finally:
        fake.kill()


if __name__ == "__main__":
    main(sys.argv[1:])
