"""What makes two webhook posts the same notification. Pure.

Alertmanager runs as an HA cluster, and two peers can both deliver one
notification (during a gossip partition, or when a peer's notification log
lags). Grafana's HA mode can do the same. The key is what a duplicate shares:
the source, the receiver named in the URL and in the body, the group key, the
status, and each alert's fingerprint, startsAt and endsAt. A new alert in the
group, a resolved one, or a changed endsAt makes a different key, so those are
never taken for duplicates.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from receiver.model import Notification


def _time(t: datetime | None) -> str:
    return "" if t is None else t.isoformat()


def dedup_key(n: Notification, url_receiver: str | None = None) -> str:
    """A hex digest that two posts of the same notification share."""
    alerts = sorted(
        (a.fingerprint or json.dumps(a.labels, sort_keys=True), _time(a.starts_at),
         _time(a.ends_at))
        for a in n.alerts
    )  # fmt: skip
    parts = [n.source, url_receiver or "", n.receiver, n.group_key, n.status, alerts]
    raw = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()
