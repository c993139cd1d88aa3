"""3. DingTalk calls per storm: N alert groups to M recipients, against the lower bound.

The lower bound is one asyncsend_v2 call per distinct message per 100 recipients:
for each group, ceil(distinct userids it must reach / 100), since every receiver in
the storm's table renders the group with the same template (one message). Half the
groups are critical, and reach their team (40 people) and the SRE rota (120) both.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receiver.routing import load_routing
from tests.fakes.dingtalk import FakeDingTalk
from tests.procs import http

from .common import TEAMS, wait_drained
from .ingest import payload

GROUPS = 100
ALERTS_PER_GROUP = 5
TIMEOUT_S = 120
MARK = re.compile(r"storm-(\d+) alert")


def group(g: int) -> dict[str, Any]:
    p = payload(ALERTS_PER_GROUP, tag=f"storm-{g}")
    labels = {"alertname": f"Storm{g}", "team": f"team-{g % TEAMS}",
              "severity": "critical" if g % 2 == 0 else "warning"}  # fmt: skip
    for i, a in enumerate(p["alerts"]):
        a["labels"] = {**labels, "instance": f"host-{i}"}
        a["fingerprint"] = f"{g:08x}{i:08x}"
    p["commonLabels"] = labels
    p["groupLabels"] = {"alertname": labels["alertname"]}
    p["groupKey"] = f'{{}}:{{alertname="{labels["alertname"]}"}}'
    return p


def measure(url: str, fake: FakeDingTalk, routing: Path) -> dict[str, Any]:
    table = load_routing(str(routing))
    now = datetime.now(UTC)
    expected: dict[int, set[str]] = {}
    for g in range(GROUPS):
        labels = group(g)["alerts"][0]["labels"]
        expected[g] = set(table.recipients_of(table.match(labels), now).userids)
    before = len(fake.sends())
    rejected = sum(http("POST", url + "/alertmanager", group(g))[0] != 200 for g in range(GROUPS))
    drained = wait_drained(url, TIMEOUT_S)
    sends = fake.sends()[before:]
    got: Counter[tuple[int, str]] = Counter()
    per_msg: dict[str, set[str]] = {}
    for req in sends:
        body = req.body or {}
        users = [u for u in str(body.get("userid_list", "")).split(",") if u]
        key = json.dumps(body.get("msg"), sort_keys=True, ensure_ascii=False)
        per_msg.setdefault(key, set()).update(users)
        for g in {int(x) for x in MARK.findall(key)}:
            got.update((g, u) for u in users)
    want = {(g, u) for g, us in expected.items() for u in us}
    bound = sum(math.ceil(len(us) / 100) for us in expected.values())
    return {
        "groups": GROUPS,
        "recipients": len(set().union(*expected.values())),
        "rejected": rejected,
        "drained_s": None if drained is None else round(drained, 2),
        "calls": len(sends),
        "lower_bound": bound,
        "lower_bound_from_observed_messages": sum(
            math.ceil(len(us) / 100) for us in per_msg.values()
        ),
        "distinct_messages": len(per_msg),
        "missing_deliveries": len(want - set(got)),
        "duplicate_deliveries": sum(n - 1 for n in got.values() if n > 1),
        "unexpected_deliveries": len(set(got) - want),
    }
