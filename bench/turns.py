"""Row 1's delivery share, in process: one planner turn over K waiting webhooks of one group.

    .venv/bin/python -m bench.turns [K,K,...] [TURNS]

Row 1 posts one alert group over and over, so each planner turn finds K webhooks of
that group waiting; it routes and renders only the newest and marks the others
superseded (receiver.delivery.replacing). This accepts K copies of row 1's 10-alert
body, runs `Planner.run_once`, and prints its CPU per turn and per webhook (best and
median of TURNS turns): the turn's fixed cost is what one K=1 turn takes, and each
superseded webhook adds the slope. Sending the newest's message is not in it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from receiver.delivery.outbox_dedup import Accept
from receiver.delivery.planner import Planner
from receiver.delivery.state import State
from receiver.settings import Settings

from .common import TEMPLATES, write_routing
from .ingest import payload


def main(argv: list[str]) -> None:
    ks = [int(k) for k in (argv[0] if argv else "1,2,5,10,20").split(",")]
    turns = int(argv[1]) if len(argv) > 1 else 30
    tmp = Path(tempfile.mkdtemp(prefix="turns-"))
    (tmp / "data").mkdir()
    settings = Settings(data_dir=str(tmp / "data"), routing=str(write_routing(tmp / "r.yaml")),
                        templates=str(TEMPLATES), dedup_window=0.0)  # fmt: skip
    state = State(settings)
    planner = Planner(state)
    body = json.dumps(payload(10)).encode()
    webhook = Accept(body, "alertmanager", None, "bench-group")
    state.outbox.accept_many([webhook])  # warm up: imports, templates, the connection
    planner.run_once()
    for k in ks:
        cpu: list[float] = []
        for _ in range(turns):
            state.outbox.accept_many([webhook] * k)
            start = time.process_time()
            planner.run_once()
            cpu.append(1000 * (time.process_time() - start))
        cpu.sort()
        print(f"K={k:3d}: CPU ms a turn best {cpu[0]:.3f} median {cpu[len(cpu) // 2]:.3f}, "
              f"a webhook {cpu[len(cpu) // 2] / k:.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
