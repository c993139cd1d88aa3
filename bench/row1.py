"""Row 1 of `make bench` alone (about 2 minutes): ingest against bare Flask and bare + insert.

    .venv/bin/python -m bench.row1

The same measurement as `make bench`'s row 1 (`bench.ingest.measure`: the same runs,
alternating, the same gunicorn options), without the other rows, so it fits the
shared bench lock's few minutes and can be repeated, alternating, against another
checkout (run it from each worktree in turn). Prints row 1's figures; writes nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tests.fakes.dingtalk import FakeDingTalk

from . import ingest
from .common import machine, write_routing
from .report import _batches, _f


def lines(ing: dict[str, Any]) -> list[str]:
    th, pc, mn = ing["throughput"], ing["paced"], ing["many"]
    cpu = th["receiver"]["cpu_ms_per_request"]
    return [
        f"req/s at max load: receiver {_f(th['receiver']['rps'])}, bare {_f(th['bare']['rps'])}"
        f", bare + insert {_f(th['durable']['rps'])}: ratio {_f(th['ratio_durable'], 3)}",
        f"CPU ms a request: web {_f(cpu['workers'], 3)} + delivery {_f(cpu['delivery'], 3)};"
        f" bare {_f(th['bare']['cpu_ms_per_request']['workers'], 3)}, + insert"
        f" {_f(th['durable']['cpu_ms_per_request']['workers'], 3)}; ratio {_f(th['cpu_ratio'], 3)}",
        f"rows per commit at max load: {_batches(ing.get('batch_rows'))} (mean/p50/max)",
        f"{mn['connections']} connections: receiver {_f(mn['receiver']['rps'])}, bare + insert"
        f" {_f(mn['durable']['rps'])}: {_f(mn['ratio_durable'], 3)}; web CPU"
        f" {_f(mn['receiver']['cpu_ms_per_request']['workers'], 3)} + delivery"
        f" {_f(mn['receiver']['cpu_ms_per_request']['delivery'], 3)} ms;"
        f" rows per commit {_batches(mn.get('batch_rows'))}",
        f"p50/p99 ms at {pc['rate']} req/s: receiver {_f(pc['receiver']['p50_ms'])}/"
        f"{_f(pc['receiver']['p99_ms'])}, bare {_f(pc['bare']['p50_ms'])}/"
        f"{_f(pc['bare']['p99_ms'])}",
    ]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dtr-row1-"))
    fake = FakeDingTalk().start()
    try:
        print(json.dumps(machine()))
        ing = ingest.measure(tmp, fake.url, write_routing(tmp / "routing.yaml"))
    finally:
        fake.stop()
    print("\n".join(lines(ing)))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
