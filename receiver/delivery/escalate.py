"""Escalation in the delivery process: records when a webhook is planned, and due steps sent.

The planner calls `planned_records` so that a notification, who it reached and the
escalation it starts commit with its items (Outbox.expand). `Escalator.run_once`,
called on every turn of the delivery loop, claims due escalations under a lease,
asks the state machine (receiver.delivery.escalation) what to do, and records a
step together with its items (Outbox.record_step) before anything is sent: a step
is recorded once, and its items are delivered as any other item.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from receiver import metrics
from receiver.delivery.escalation import (
    Escalation,
    Fire,
    Stop,
    Wait,
    decide,
    escalated_note,
    first_due,
    next_due,
)
from receiver.delivery.outbox import Outbox, Pending
from receiver.delivery.owner import owner_is_dead, process_owner
from receiver.delivery.pipeline import Entry, split_by_receiver, step_entries
from receiver.delivery.state import State
from receiver.delivery.status_bars import BAR_ATTEMPTS
from receiver.delivery.wake import until_due
from receiver.errors import DingTalkError, OutboxUnavailable
from receiver.ingest.alertmanager import parse_alertmanager
from receiver.ingest.grafana import parse_grafana
from receiver.messages.acklinks import AckLinks
from receiver.messages.filters import WORDS
from receiver.messages.oa import RESOLVED_BAR
from receiver.model import Notification
from receiver.routing.escalation import Policy
from receiver.routing.table import Directory, RoutingTable
from receiver.settings import Settings

log = logging.getLogger(__name__)

# The escalation thread sleeps until the next step or status bar change is due, and
# at most IDLE_S: how late it finds a step recorded due sooner than that (`after: 0s`)
# or a status bar change an acknowledgement queued. What is overdue (a step whose read
# check failed, another replica's) it looks at again after POLL_S. A step may be 2 s
# late at most.
POLL_S = 0.2
IDLE_S = 1.0
PURGE_EVERY_S = 600.0

PARSERS: dict[str, Callable[[bytes], Notification]] = {
    "alertmanager": parse_alertmanager,
    "grafana": parse_grafana,
}


class ReadReceipts(Protocol):
    def get_send_result(self, task_id: int) -> dict[str, Any]: ...


def ack_links(settings: Settings, nid: int, at: float) -> AckLinks | None:
    """The acknowledge links of notification `nid`, when RECEIVER_EXTERNAL_URL is set."""
    if not settings.external_url or not settings.secret_key:
        return None
    return AckLinks(settings.external_url, settings.secret_key, nid, at + settings.ack_ttl)


def ends_at(n: Notification) -> float | None:
    """The latest endsAt when every alert has one (the group is over then), else None."""
    ends = [a.ends_at for a in n.alerts]
    if not ends or any(e is None for e in ends):
        return None
    return max(e.timestamp() for e in ends if e is not None)


def planned_records(
    table: RoutingTable,
    p: Pending,
    n: Notification,
    entries: Sequence[Entry],
    words: dict[str, str] | None = None,
    parts: dict[str, Notification] | None = None,
    since: float | None = None,
) -> Callable[[sqlite3.Connection, list[int]], None]:
    """What `expand` writes with the items: the notification, who it reached, escalations.
    `parts`: the planner's `split_by_receiver` of `n` at its receipt, if it has it.
    `since`: when an escalation it starts started, if before `p` was received (an older
    webhook of the group that `p` replaced before it was planned: receiver.delivery.replacing)."""
    started = p.received_at if since is None else min(since, p.received_at)
    if parts is None:
        at = datetime.fromtimestamp(p.received_at, UTC)
        parts = split_by_receiver(table, n, at, p.receiver)
    statuses: dict[str, tuple[str, float | None]] = {
        name: (part.status, ends_at(part)) for name, part in parts.items()
    }
    starts: dict[str, tuple[str, float]] = {}
    for name, part in parts.items():
        policy = table.policies.get(table.receivers[name].escalation or "")
        if policy is not None and part.status == "firing":
            starts[name] = (policy.name, first_due(policy, started))

    resolved = (words or WORDS["zh"])["resolved"]

    def write(db: sqlite3.Connection, ids: list[int]) -> None:
        Outbox.record_planned(
            db, nid=p.id, received_at=p.received_at, source=p.source, group_key=p.group_key,
            parts=statuses, starts=starts, entries=entries, ids=ids,
            resolved_bar=(resolved, RESOLVED_BAR), started_at=started,
        )  # fmt: skip

    return write


def note_reads(outbox: Outbox, item_id: int, readers: Sequence[str], now: float) -> None:
    """Record DingTalk's read receipts, and time each first read from when it reached them."""
    for reached_at in outbox.record_reads(item_id, readers, now):
        metrics.time_to_read.observe(max(0.0, now - reached_at))


def name_of(directory: Directory, userid: str) -> str:
    """The person's name from the synced directory, or the userid."""
    get = getattr(directory, "get", None)
    user = get(userid) if get is not None else None
    return str(getattr(user, "name", "") or userid)


class Escalator:
    def __init__(
        self,
        state: State,
        receipts: ReadReceipts | None = None,
        *,
        owner: str = "",
        lease_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.outbox = state.outbox
        self.receipts = receipts
        self.owner = owner or process_owner()
        self.lease_s = lease_s
        self.clock = clock
        self.retention_s = state.settings.retention
        self._recovered = False
        self._purged = 0.0

    def run_once(self) -> int:
        """Handle every escalation that is due; return how many were handled."""
        if not self._recovered:  # a step a killed process had claimed is due again at once
            self._recovered = True
            for owner in self.outbox.escalation_owners():
                if owner != self.owner and owner_is_dead(owner):
                    self.outbox.release_escalation_owner(owner)
                    log.warning("escalation_lease_recovered owner=%s", owner)
        now = self.clock()
        due = self.outbox.claim_escalations(now=now, owner=self.owner, lease_s=self.lease_s)
        for esc in due:
            try:
                self.handle(esc, now)
            except DingTalkError as e:  # a read check that failed: try again shortly
                log.warning("escalation_check_failed id=%d error=%s", esc.id, e)
        done = len(due) + self.flip_bars(now)
        if now - self._purged > PURGE_EVERY_S:
            self._purged = now
            self.outbox.purge_escalations(self.retention_s, now)
        return done

    def run(self, stop: threading.Event) -> None:
        """The escalation thread of the delivery process: a due step goes out at once,
        whatever the send loop is busy with. Idle, it wakes once a second, not five
        times: each wake-up cost about 0.5 ms of CPU with cold caches (bench/README.md)."""
        while not stop.is_set():
            wait = IDLE_S
            try:
                self.run_once()
                wait = self.wait_s()
            except OutboxUnavailable as e:
                log.error("outbox_unavailable error=%s", e)
            # Whatever else goes wrong must not end paging: log it, and carry on.
            except Exception as e:
                log.exception("escalation_loop_error error=%s: %s", type(e).__name__, e)
            stop.wait(wait)

    def wait_s(self) -> float:
        """How long to sleep: until the next step or status bar change is due (5 ms
        after, so that it is), IDLE_S at most; POLL_S when it is overdue."""
        return until_due(self.outbox.next_due(), self.clock(), most=IDLE_S, overdue=POLL_S)

    def flip_bars(self, now: float) -> int:
        """Send the queued OA status bar changes (已认领 · 张三, 已恢复)."""
        bars = self.outbox.claim_bars(now=now)
        update = getattr(self.receipts, "update_status_bar", None)
        for bar in bars:
            if update is None:  # dry run: nothing was sent, so there is no bar to change
                self.outbox.bar_done(bar.id, now=now, error="dry run")
                continue
            try:
                update(bar.task_id, bar.value, bar.bg)
            except DingTalkError as e:
                if e.retryable and bar.attempts < BAR_ATTEMPTS:
                    self.outbox.bar_retry(bar.id, at=now + 5.0 * 2**bar.attempts, error=str(e))
                else:
                    self.outbox.bar_done(bar.id, now=now, error=str(e))
                log.warning("status_bar_failed task_id=%d attempt=%d error=%s",
                            bar.task_id, bar.attempts, e)  # fmt: skip
                continue
            self.outbox.bar_done(bar.id, now=now)
            log.info("status_bar_updated task_id=%d value=%s", bar.task_id, bar.value)
        return len(bars)

    def handle(self, esc: Escalation, now: float) -> None:
        table = self.state.table
        policy = table.policies.get(esc.policy) if esc.receiver in table.receivers else None
        acked = bool(self.outbox.acked(esc.receiver, esc.group_key, esc.started_at))
        read = False
        if policy is not None and policy.until == "read" and not acked:
            read = self.anyone_read(esc, now)
        decision = decide(esc, policy, now, acked=acked, read=read)
        if isinstance(decision, Stop):
            if self.outbox.stop_escalation(esc.id, decision.reason, at=now, owner=self.owner):
                log.info("escalation_stopped id=%d receiver=%s reason=%s step=%d",
                         esc.id, esc.receiver, decision.reason, esc.step)  # fmt: skip
        elif isinstance(decision, Wait):
            self.outbox.release_escalation(esc.id, self.owner)
        elif isinstance(decision, Fire) and policy is not None:
            self.fire(esc, policy, decision, now)

    def anyone_read(self, esc: Escalation, now: float) -> bool:
        """Ask DingTalk (getsendresult) now, not an old poll, whether anyone notified read it."""
        if self.receipts is None:
            return False
        reached = self.outbox.reached(esc.receiver, esc.group_key, esc.started_at)
        anyone = any(r.read_at is not None for r in reached)
        for item_id, task_ids in self.outbox.task_ids_of(r.item_id for r in reached).items():
            for task_id in task_ids:
                result = self.receipts.get_send_result(task_id)
                # a task's readers are its recipients: a department's members count too
                readers = [str(u) for u in result.get("read_user_id_list") or []]
                if readers:
                    note_reads(self.outbox, item_id, readers, now)
                    anyone = True
        return anyone

    def fire(self, esc: Escalation, policy: Policy, d: Fire, now: float) -> None:
        table, settings = self.state.table, self.state.settings
        row = self.outbox.planned_notification(esc.notification_id)
        if row is None:  # purged: nothing left to send
            self.outbox.stop_escalation(esc.id, "removed", at=now, owner=self.owner)
            return
        n = PARSERS[row.source](row.body)
        at = datetime.fromtimestamp(now, UTC)
        mine = tuple(a for a in n.alerts if esc.receiver in table.match(a.labels))
        part = replace(n, alerts=mine or n.alerts)  # none: the webhook URL named the receiver
        reached = self.outbox.reached(esc.receiver, esc.group_key, esc.started_at)
        done = dict.fromkeys(r.userid for r in reached)
        who = table.step_recipients(policy.name, d.step, at)
        users = [u for u in who.userids if u not in done]
        depts = [x for x in who.departments if f"dept:{x}" not in done]
        names = [name_of(self.state.directory, u) for u in done if not u.startswith("dept:")]
        note = escalated_note(self.state.renderer.words, now - esc.started_at, names)
        receiver = table.receivers[esc.receiver]
        entries = step_entries(
            self.state.renderer, part, receiver, users, depts, now=at,
            ack=ack_links(settings, esc.notification_id, now), note=note, robots=table.robots,
        )  # fmt: skip
        ids = self.outbox.record_step(
            esc, owner=self.owner, step=d.step, at=now, next_due=next_due(policy, d.step, now),
            exhausted=d.exhausted, entries=entries, source=row.source,
        )  # fmt: skip
        if ids is None:
            log.warning("escalation_lease_lost id=%d step=%d", esc.id, d.step)
            return
        metrics.escalations.labels(policy.name, str(d.step)).inc()
        log.info(
            "escalated id=%d receiver=%s policy=%s step=%d to=%s depts=%s items=%s after=%.0fs"
            " late_ms=%.0f",
            esc.id, esc.receiver, policy.name, d.step, ",".join(users), depts, ids,
            now - esc.started_at, (now - (esc.due_at or now)) * 1000,
        )  # fmt: skip
