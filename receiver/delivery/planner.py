"""Accepted webhooks become outbox items here, in the delivery process: route, render, plan.

A web worker only validates a payload and commits its body as `pending`, so that a
2xx costs one parse and one insert, not a Jinja render. Here each pending webhook is
planned as it would have been the moment it was received: time intervals, on-call
schedules and the message's timestamp all use `received_at`. Routing and templates
are the ones loaded now (a reload between the two applies). Its items replace it in
one transaction, so it becomes items once, or stays pending.

A webhook that cannot be planned (its receiver was removed by a reload, or a bug)
is never dropped: it stays pending, with the error, and is tried again later.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from receiver import metrics
from receiver.delivery.escalate import ack_links, planned_records
from receiver.delivery.outbox import Pending
from receiver.delivery.pipeline import Entry, plan, split_by_receiver
from receiver.delivery.replacing import covers
from receiver.delivery.sending import CLAIM_MAX
from receiver.delivery.shards import Shards
from receiver.delivery.state import State
from receiver.ingest.alertmanager import parse_alertmanager
from receiver.ingest.grafana import parse_grafana
from receiver.messages.links import notification_url
from receiver.model import Notification

log = logging.getLogger(__name__)

# For the bodies the outbox keeps, each checked when it was received.
PARSERS: dict[str, Callable[[bytes], Notification]] = {
    "alertmanager": functools.partial(parse_alertmanager, stored=True),
    "grafana": functools.partial(parse_grafana, stored=True),
}
RETRY_BASE_S = 5.0
RETRY_CAP_S = 600.0


@dataclass(frozen=True)
class Prepared:
    """A pending webhook routed and rendered: what `expand` writes for it."""

    p: Pending
    entries: list[Entry]
    records: Callable[[Any, list[int]], None]
    n: Notification
    parts: dict[str, Notification]

    @functools.cached_property
    def whole(self) -> bool:
        """Whether it covers a webhook with its own bytes (all firing, not cut short)."""
        return covers(self.n, self.n)


def _key(p: Pending) -> tuple[str, str | None, str]:
    return (p.source, p.receiver, p.group_key)


# Webhooks a turn plans: as many as a claim can send at most. A turn of 20 took 2.5%
# more CPU a webhook in row 7's drain, one of 10 5% more: each turn starts with its
# caches cold from the sends before it (bench/README.md).
PLAN_BATCH = CLAIM_MAX


class Planner:
    def __init__(
        self, state: State, *, limit: int = PLAN_BATCH, shards: Shards | None = None
    ) -> None:
        self.state = state
        self.limit = limit
        self.shards = shards  # with several delivery processes: which groups are this one's

    def run_once(self) -> int:
        """Plan the due pending webhooks, oldest first; return how many were tried.

        Each is routed and rendered on its own; their items are written in one
        transaction (one commit for the turn, not one a webhook). Of several waiting
        webhooks of one group, only the newest is planned when it says all that the
        older ones would have (receiver.delivery.replacing); they are marked replaced.
        """
        self.state.poll()  # the delivery process follows routing.yaml edits like a web worker
        taken = self.shards.taken() if self.shards is not None else None
        due = self.state.outbox.due_pending(limit=self.limit, taken=taken)
        newest = {_key(p): p for p in due if p.group_key}  # in id order: the last one wins
        ready = {p.id: self.prepare(p) for p in newest.values()}
        olders: dict[int, list[tuple[Pending, str]]] = {}
        planned: list[Prepared] = []
        for p in due:
            top = newest.get(_key(p))
            if top is not None and top.id != p.id:
                status = self._replaced(ready[top.id], p)
                if status is not None:
                    olders.setdefault(top.id, []).append((p, status))
                    continue
            x = ready[p.id] if p.id in ready else self.prepare(p)
            if x is not None:
                planned.append(x)
        replaced: dict[int, list[int]] = {}
        plans = []
        for x in planned:
            also = x.records
            if x.p.id in olders:
                also = self._replacing(x, olders[x.p.id], replaced)
            plans.append((x.p, x.entries, also))
        if plans:
            done = self.state.outbox.expand_many(plans)
            for x, ids in zip(planned, done, strict=True):
                if ids is not None:  # None: another delivery process planned it first
                    self._enqueued(x.p, x.n, x.entries, ids)
                    if replaced.get(x.p.id):
                        log.info("replaced pending=%s by=%d item=%d group_key=%s",
                                 ",".join(map(str, replaced[x.p.id])), x.p.id, ids[0],
                                 x.p.group_key)  # fmt: skip
        return len(due)

    def _replaced(self, newest: Prepared | None, p: Pending) -> str | None:
        """`p`'s status if `newest` replaces it; None if `p` must be planned itself."""
        if newest is None or not newest.entries:
            return None
        if p.body == newest.p.body:  # the same bytes say the same (Alertmanager's repeats)
            return newest.n.status if newest.whole else None
        try:
            older = PARSERS[p.source](p.body)
        except Exception:  # planned as it is, and its failure recorded there
            return None
        return older.status if covers(newest.n, older) else None

    def _replacing(
        self, x: Prepared, olders: list[tuple[Pending, str]], replaced: dict[int, list[int]]
    ) -> Callable[[Any, list[int]], None]:
        """The newest's writes: its records, its escalations started when the first of
        the group was received, and the older webhooks marked replaced by its first item."""
        since = min(p.received_at for p, _ in olders)
        table, box = self.state.table, self.state.outbox
        records = planned_records(table, x.p, x.n, x.entries, self.state.renderer.words,
                                  x.parts, since=since)  # fmt: skip
        receivers = ",".join(dict.fromkeys(e.receiver for e in x.entries))

        def write(db: Any, ids: list[int]) -> None:
            records(db, ids)
            replaced[x.p.id] = box.replace_pending(db, olders, ids[0], x.p, receivers)

        return write

    def plan_one(self, p: Pending) -> None:
        """Plan one pending webhook into its items, in a transaction of its own."""
        x = self.prepare(p)
        if x is not None:
            ids = self.state.outbox.expand(x.p, x.entries, x.records)
            if ids is not None:
                self._enqueued(p, x.n, x.entries, ids)

    def prepare(self, p: Pending) -> Prepared | None:
        """Route and render `p`: its entries and escalation records; None if it failed
        (then it stays pending, with the error, and is tried again later)."""
        table = self.state.table
        try:
            if p.receiver is not None and p.receiver not in table.receivers:
                raise LookupError(f"receiver {p.receiver!r} is no longer in {table.path}")
            n = PARSERS[p.source](p.body)
            s = self.state.settings
            link = notification_url(s.external_url, s.secret_key, p.id, p.received_at + s.retention)
            n = replace(n, more_url=link)
            at = datetime.fromtimestamp(p.received_at, UTC)
            links = ack_links(self.state.settings, p.id, p.received_at)
            # Routed once: the entries and the escalation records see the same parts.
            parts = split_by_receiver(table, n, at, p.receiver)
            entries = plan(table, self.state.renderer, n, now=at, receiver=p.receiver, ack=links,
                           parts=parts)  # fmt: skip
            records = planned_records(table, p, n, entries, self.state.renderer.words, parts)
        # Whatever went wrong, the alert was accepted: keep it, say why, try again later.
        except Exception as e:
            delay = min(RETRY_CAP_S, RETRY_BASE_S * 2.0 ** min(p.attempts, 20))  # not 2.0**1024
            self.state.outbox.defer(p.id, error=f"{type(e).__name__}: {e}", delay_s=delay)
            metrics.plan_failures.inc()
            log.error("plan_failed pending=%d attempt=%d retry_in=%.0fs error=%s: %s",
                      p.id, p.attempts + 1, delay, type(e).__name__, e)  # fmt: skip
            return None
        return Prepared(p, entries, records, n, parts)

    @staticmethod
    def _enqueued(p: Pending, n: Notification, entries: list[Entry], ids: list[int]) -> None:
        for entry in entries:
            metrics.messages_enqueued.labels(entry.receiver).inc()
        log.info(
            "enqueued pending=%d source=%s receiver=%s alerts=%d messages=%d ids=%s waited_ms=%.0f",
            p.id, p.source, p.receiver or n.receiver, len(n.alerts), len(ids), ids,
            (time.time() - p.received_at) * 1000,
        )  # fmt: skip
