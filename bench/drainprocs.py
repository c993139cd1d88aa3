"""Row 7's drain by several delivery processes at once, in process: where each one's
CPU goes, and how long each waits for SQLite's write lock.

    .venv/bin/python -m bench.drainprocs [PROCESSES] [WEBHOOKS]

As `bench.drainstages` (2 processes and 2,000 webhooks unless told), but PROCESSES
delivery workers are forked, each as `serve` builds process i of PROCESSES
(`make_delivery(settings, process=i)`: it plans its share of the groups and sends
whatever it claims), against one fake DingTalk in another process. They start
together once every one is built, and each stops after three empty turns (about
0.06 s of idle tail in the wall time). Each prints its CPU, its stages (total ms, as
`drainstages --stages` times them), and its BEGIN IMMEDIATEs that took over 0.3 ms:
how many, and how long they took in all (waiting for the write lock, mostly in
SQLite's own busy handler). The fake's CPU over the drain is printed too: on the
shared 2-core machine it is taken from the delivery processes. Prints JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from .common import ROOT, cpu_s
from .drainstages import FAKE, backlog, stages

SLOW_BEGIN_S = 0.0003


def watch_begins(waits: dict[str, float]) -> None:
    """Count the BEGIN IMMEDIATEs of this process, and those slower than SLOW_BEGIN_S."""
    import receiver.storage.sqlite as sq

    inner = sq._begin_immediate

    def timed(db: Any) -> None:
        t = time.perf_counter()
        inner(db)
        took = time.perf_counter() - t
        waits["begins"] += 1
        if took > SLOW_BEGIN_S:
            waits["slow_begins"] += 1
            waits["slow_begin_s"] += took

    sq._begin_immediate = timed


def child(settings: Any, process: int, go: int) -> None:
    from receiver.delivery import health
    from receiver.delivery.process import make_delivery, settle_heap

    worker, _ = make_delivery(settings, process=process)
    worker.wakeup = None
    spent: dict[str, list[float]] = {}
    waits = {"begins": 0, "slow_begins": 0, "slow_begin_s": 0.0}
    stages(worker, spent)
    watch_begins(waits)
    settle_heap()
    os.read(go, 1)
    cpu, idle = time.process_time(), 0
    while idle < 3:
        health.beat(settings.data_dir, process=process)  # so no other takes its groups over
        if worker.run_once():
            idle = 0
        else:
            idle += 1
            time.sleep(0.02)
    out = {
        "process": process,
        "cpu_s": round(time.process_time() - cpu, 3),
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in waits.items()},
        "stages_ms": {k: round(1e3 * sum(v), 1) for k, v in spent.items() if v},
    }
    print(json.dumps(out), flush=True)


def main(argv: list[str]) -> None:
    processes = int(argv[0]) if argv else 2
    n = int(argv[1]) if len(argv) > 1 else 2000
    fake = subprocess.Popen([sys.executable, "-c", FAKE], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        url = (fake.stdout.readline() if fake.stdout else "").strip()
        settings, accept = backlog(
            url, n, "dtr-drainprocs-", RECEIVER_DELIVERY_PROCESSES=str(processes)
        )
        from receiver.delivery import health

        for i in range(processes):
            health.beat(settings.data_dir, process=i)
        go, start = os.pipe()
        kids = []
        for i in range(processes):
            pid = os.fork()
            if pid == 0:
                try:
                    child(settings, i, go)
                finally:
                    os._exit(0)
            kids.append(pid)
        time.sleep(1.0)  # every child built
        fake_cpu, wall = cpu_s([fake.pid]), time.perf_counter()
        os.write(start, b"x" * processes)
        for pid in kids:
            os.waitpid(pid, 0)
        wall = time.perf_counter() - wall
        result = {
            "processes": processes,
            "webhooks": n,
            "sent": accept.counts().get("sent", 0),
            "wall_s": round(wall, 3),
            "webhooks_per_s": round(n / wall, 1),
            "fake_cpu_ms_per_webhook": round(1e3 * (cpu_s([fake.pid]) - fake_cpu) / n, 3),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(result))
    finally:
        fake.kill()


if __name__ == "__main__":
    main(sys.argv[1:])
