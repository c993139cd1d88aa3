"""The per-user daily cap (DingTalk's 500 messages a user a day): the userids of an item
that already had their day's messages wait for tomorrow in a held copy; the rest go now.
A person who reaches 80% of it is warned of once that day."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from receiver import metrics
from receiver.delivery.limits import Limits, next_day
from receiver.delivery.outbox import Item, Outbox

log = logging.getLogger(__name__)


def hold_over_cap(
    item: Item, limits: Limits, outbox: Outbox, now: float, over: list[str] | None = None
) -> Item:
    """`item` without the userids past the cap, who are moved to a copy held until tomorrow.
    `over`: those userids, if the caller has asked (Limits.admit)."""
    over = limits.over_daily(item.userids, now=now) if over is None else over
    if not over:
        return item
    until = next_day(now)
    reason = f"daily limit of {limits.daily} messages per user reached"
    held = outbox.hold(item.id, until=until, reason=reason, userids=over)
    metrics.held.labels("user_daily_limit").inc(len(over))
    log.warning(
        "held id=%d as=%d userids=%s until=%s reason=%s",
        item.id, held, ",".join(over),
        time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(until)), reason,
    )  # fmt: skip
    if held == item.id:
        return replace(item, userids=(), departments=())
    return replace(item, userids=tuple(u for u in item.userids if u not in set(over)))


def count_sent(limits: Limits, userids: tuple[str, ...], now: float) -> None:
    """Count a sent message against each person's day; log who just reached 80% of it."""
    for userid in limits.count_sent(userids, now=now):
        metrics.user_daily_quota_warnings.inc()
        log.warning("user_daily_quota_warning userid=%s sent=%d%% of %d today",
                    userid, 80, limits.daily)  # fmt: skip
