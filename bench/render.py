"""5. Rendering a 500-alert group under the size budget, in process, with the default template."""

from __future__ import annotations

import json
import time
from typing import Any

from receiver.ingest.alertmanager import parse_alertmanager
from receiver.messages.render import Renderer, msg_size

from .common import TEMPLATES
from .ingest import payload

ALERTS = 500
REPEAT = 20


def measure() -> dict[str, Any]:
    n = parse_alertmanager(json.dumps(payload(ALERTS, tag="render")).encode())
    one = parse_alertmanager(json.dumps(payload(1, tag="render")).encode())
    renderer = Renderer(str(TEMPLATES))
    times: list[float] = []
    base: list[float] = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        message = renderer.render(n)
        times.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        renderer.render(one)
        base.append((time.perf_counter() - t0) * 1000)
    text = message.msg["markdown"]["text"]
    shown = text.count("render alert ")
    return {
        "alerts": ALERTS,
        "ms_per_render": round(min(times), 2),
        "ms_per_render_1_alert": round(min(base), 3),
        "msg_bytes": msg_size(message.msg),
        "budget_bytes": renderer.max_bytes,
        "within_budget": msg_size(message.msg) <= renderer.max_bytes,
        "alerts_shown": shown,  # a cut-off last alert counts
        "says_how_many_more": any(str(ALERTS - k) in text for k in (shown - 1, shown)),
    }
