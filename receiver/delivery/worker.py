"""The delivery worker: plan accepted webhooks, claim from the outbox, send, record.

It runs in its own process, started by `serve`. Each turn of its loop first plans
the webhooks the web workers accepted (receiver.delivery.planner: route and render them
into outbox items), then sends. In dry-run mode (no credentials) it logs each
message instead of sending it, and marks it `dry_run`. Besides sending, its loop runs
the getsendresult follow-up and purges old sent items.

A failed send is classified in one place (receiver.delivery.failures):
- a platform failure (an outage, a throttle, no token) pauses sending for everyone
  (receiver.delivery.outbox_pause) and is not counted against the message; while
  paused, one probe call goes out at a short, capped interval, and its success
  ends the pause;
- a failure of the message's own retries with its own backoff, and holds up only
  later items of its own receiver, group and person (receiver.delivery.order).

A `Sender` is anything that takes (userids, msg, departments) and raises
DingTalkError on failure; other kinds of delivery plug in there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping

from receiver import metrics
from receiver.delivery import health
from receiver.delivery.daily_cap import count_sent, hold_over_cap
from receiver.delivery.failures import Kind, classify
from receiver.delivery.followup import FollowUp
from receiver.delivery.limits import Limits
from receiver.delivery.outbox import Item, Outbox
from receiver.delivery.outbox_pause import PauseState
from receiver.delivery.owner import owner_is_dead, process_owner
from receiver.delivery.pausing import Pauses
from receiver.delivery.sending import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    GIVE_UP_AFTER_S,
    ChannelSender,
    Outcome,
    Sender,
    claim_size,
)
from receiver.delivery.settle import Owed, RepeatLimiter
from receiver.delivery.verdict import Verdicts
from receiver.delivery.wake import Wakeup, until_due
from receiver.dingtalk.client import redact
from receiver.errors import DingTalkError, OutboxUnavailable, RetryableError

log = logging.getLogger(__name__)

PURGE_EVERY_S = 600.0
# Woken by receiver.delivery.wake when work is queued; otherwise an idle worker sleeps
# until the next retry, follow-up, probe or lease falls due, for at most IDLE_MAX_S: on
# SQLite every writer is on this host and wakes it; on PostgreSQL another replica's web
# workers cannot, so it looks every IDLE_POLL_S. Work that is due but could not go (it
# waits behind another) is looked at again every IDLE_POLL_S.
IDLE_POLL_S = 1.0
IDLE_MAX_S = 5.0
# A turn that planned two webhooks or more (they come faster than turns) is followed by
# the next no sooner than this after it began. Under a storm each turn then plans what
# came in over the last TURN_MIN_S together, and of a group posted again and again only
# the newest webhook is routed, rendered and sent (the older ones are superseded); at
# 1,500 webhooks/s of one group that took delivery's CPU a webhook from 0.24 ms to 0.09
# (bench/README.md). A webhook may then wait up to this long; one at a time, none.
TURN_MIN_S = 0.02


class Worker:
    def __init__(
        self,
        outbox: Outbox,
        sender: Sender,
        *,
        limits: Limits | None = None,
        followup: FollowUp | None = None,
        poll_s: float = 0.05,
        give_up_after_s: float = GIVE_UP_AFTER_S,
        backoff_min_s: float = BACKOFF_BASE_S,
        backoff_max_s: float = BACKOFF_CAP_S,
        followup_delay_s: float = 60.0,
        retention_s: float | None = None,
        lease_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        parent_pid: int | None = None,
        plan: Callable[[], int] | None = None,
        channels: Mapping[str, ChannelSender] | None = None,
        wakeup: Wakeup | None = None,
        process: int = 0,
    ) -> None:
        self.process = process  # which of RECEIVER_DELIVERY_PROCESSES: its heartbeat file
        self.wakeup = wakeup  # with it, an idle worker sleeps until poked (or IDLE_POLL_S)
        self.channels = dict(channels or {})  # item.channel -> its sender; "work" is ours
        self.parent_pid = parent_pid
        self.plan = plan
        self.outbox = outbox
        self.sender = sender
        self.limits = limits
        self.batch = claim_size(limits)  # items a claim leases (1 while paused)
        self.followup = followup
        self.poll_s = poll_s
        self.give_up_after_s = give_up_after_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.followup_delay_s = followup_delay_s
        self.retention_s = retention_s
        self.lease_s = lease_s
        self.clock = clock
        self.owner = process_owner()
        self.planned = 0  # webhooks the last turn planned
        self.stopping = threading.Event()
        self._last_purge = 0.0
        self._claimed_at = 0.0  # time.monotonic() of the last claim
        self.owed = Owed()  # outbox writes owed after one failed (a full disk)
        self.pauses = Pauses(outbox, backoff_min_s, backoff_max_s, give_up_after_s)
        self.verdicts = Verdicts(
            outbox, self.owner, lambda: self.clock(), give_up_after_s=give_up_after_s,
            backoff_min_s=backoff_min_s, backoff_max_s=backoff_max_s,
        )  # fmt: skip
        self.errors = RepeatLimiter(log)

    def run_once(self) -> int:
        """Plan what was accepted, then claim and handle one batch; return how much was done."""
        self.planned = self.plan() if self.plan is not None else 0
        return self.planned + self.send_batch()

    def send_batch(self) -> int:
        """Claim and handle one batch; return how many items were handled."""
        # Writes owed since one failed come first; while the outbox refuses them this
        # raises, and nothing is claimed or sent.
        self.owed.settle(self._record_late, self._give_back)
        pause = self.outbox.pause_state()
        if pause is not None and pause.probe_at > time.time():
            return 0
        avoid = pause.suspect if pause is not None else None  # a probe tries another message
        items = self.outbox.claim(
            limit=1 if pause else self.batch, lease_s=self.lease_s, owner=self.owner, avoid=avoid
        )
        self._claimed_at = time.monotonic()
        if pause is not None and items and not self.outbox.take_probe(self.lease_s, self.owner):
            self.outbox.release(items[0].id, self.owner)  # another process probes
            return 0
        behind: set[tuple[str, str, str]] = set()  # order keys of items that did not go out
        for n, item in enumerate(items):
            if n and n % 10 == 0:  # a batch of 50 beats as often as 10 a batch did (/readyz)
                health.beat(os.path.dirname(self.outbox.path), process=self.process)
            keys = {(item.receiver, item.group_key, r) for r in item.recipients}
            if self.stopping.is_set() or keys & behind:
                self.outbox.release(item.id, self.owner)  # keep its place
                behind |= keys
                continue
            try:
                outcome = self.handle(item, pause)
            except OutboxUnavailable:
                # Stop here; give back the rest as soon as the outbox takes writes again.
                self.owed.release += [i.id for i in items[n:] if i.id not in self.owed.sent]
                raise
            if outcome is Outcome.PAUSED:
                for rest in items[n + 1 :]:
                    self.outbox.release(rest.id, self.owner)
                return n + 1
            if pause is not None:  # the probe made no call (held, say): another may go now
                self.outbox.reprobe()
            if outcome is Outcome.WAITING:
                behind |= keys
        return len(items)

    def handle(self, item: Item, pause: PauseState | None = None) -> Outcome:
        """Send one item (a probe if `pause`); say whether later items may go."""
        if item.channel in self.channels:  # another channel (a group robot) sends its own
            ok = self.channels[item.channel].handle(item, self.owner)
            return Outcome.SENT if ok else Outcome.WAITING
        # Renew before working on an item, unless the claim is recent: a lease this young
        # is ours (only a dead owner's or an expired lease is taken).
        fresh = time.monotonic() - self._claimed_at < self.lease_s / 4
        if not fresh and not self.outbox.renew(item.id, self.owner, self.lease_s):
            log.warning("lease_lost id=%d", item.id)
            return Outcome.WAITING
        if self.limits is not None:
            # The cap and room for the call in one transaction; a wait asks again below.
            over, wait = self.limits.admit(item.userids, len(item.departments), today=self.clock())
            item = hold_over_cap(item, self.limits, self.outbox, self.clock(), over)
            if not item.userids and not item.departments:
                return Outcome.SENT
            if wait > 0 and not self._wait_for_room(item):
                return Outcome.WAITING
        if not self.outbox.start_call(item.id, self.owner, self.lease_s):
            log.warning("lease_lost id=%d", item.id)  # another process has it: don't send
            return Outcome.WAITING
        try:
            results = self.sender.async_send(list(item.userids), item.msg, list(item.departments))
        except DingTalkError as e:
            return self._failed(item, e, pause)
        except Exception as e:  # a reply nobody foresaw: retry it, never let it kill the loop
            where = traceback.extract_tb(e.__traceback__)[-1]
            what = f"unexpected {type(e).__name__}: {e} at {where.filename}:{where.lineno}"
            log.error("send_failed_unexpectedly id=%d error=%s", item.id, redact(what))
            return self._failed(item, RetryableError(redact(what)), pause)
        if getattr(self.sender, "dry_run", False):  # logged by the sender; nothing left
            self.outbox.mark_sent(item.id, [], state="dry_run")
            metrics.sends.labels("dry_run", "").inc()
            log.info("dry_run_stored id=%d receiver=%s", item.id, item.receiver)
            return Outcome.SENT
        task_ids = [r.task_id for r in results]
        try:
            self._record_sent(item.id, task_ids)
        except OutboxUnavailable:
            self.owed.sent[item.id] = task_ids  # DingTalk has it: never send it again
            raise
        log.info("sent id=%d receiver=%s task_ids=%s", item.id, item.receiver, task_ids)
        if pause is not None:
            self.pauses.resume(item.id)
        if self.limits is not None:
            count_sent(self.limits, item.userids, self.clock())
        return Outcome.SENT

    def _record_sent(self, item_id: int, task_ids: list[int]) -> None:
        self.outbox.mark_sent(item_id, task_ids, followup_after_s=self.followup_delay_s)
        metrics.sends.labels("sent", "").inc()

    def _record_late(self, item_id: int, task_ids: list[int]) -> None:
        """A send DingTalk accepted while the outbox refused writes, recorded now."""
        self._record_sent(item_id, task_ids)
        log.info("sent id=%d task_ids=%s recorded_late=true", item_id, task_ids)

    def _give_back(self, item_id: int) -> None:
        self.outbox.release(item_id, self.owner)

    def _wait_for_room(self, item: Item) -> bool:
        """Wait for the rate and per-minute limits; False if stopping meanwhile."""
        assert self.limits is not None
        n = len(item.userids) + len(item.departments)
        while (wait := self.limits.reserve(n)) > 0:
            metrics.limit_waits.inc(wait)
            if self.stopping.wait(min(wait, self.lease_s / 2)):
                self.outbox.release(item.id, self.owner)
                return False
            if not self.outbox.renew(item.id, self.owner, self.lease_s):
                log.warning("lease_lost id=%d", item.id)  # another process has it: don't send
                return False
        return True

    def _failed(self, item: Item, e: DingTalkError, pause: PauseState | None) -> Outcome:
        failure = classify(e)
        if failure.kind is Kind.PLATFORM:
            self.pauses.pause(item, e, failure, pause, self.owner)
            return Outcome.PAUSED
        if pause is not None:
            self.pauses.resume(item.id)  # DingTalk answered about the message: it works again
        return Outcome.SENT if self.verdicts.failed(item, e, failure) else Outcome.WAITING

    def recover_orphans(self) -> None:
        """Items leased by a delivery process on this host that died go back at once."""
        for owner in self.outbox.owners():
            if owner != self.owner and owner_is_dead(owner):
                n = self.outbox.release_owner(owner)
                log.warning("lease_recovered owner=%s items=%d", owner, n)

    def housekeeping(self) -> int:
        done = 0
        if self.followup is not None and self.outbox.pause_state() is None:
            done = self.followup.run_once()  # not while DingTalk fails for everyone
        now = self.clock()
        if self.retention_s is not None and now - self._last_purge > PURGE_EVERY_S:
            self._last_purge = now
            purged = self.outbox.purge_sent(self.retention_s)
            if purged:
                log.info("purged sent=%d older_than=%.0fs", purged, self.retention_s)
        return done

    def run(self) -> None:
        log.info("delivery_started owner=%s", self.owner)
        try:
            self.recover_orphans()
        except OutboxUnavailable as e:
            self.errors.error(f"outbox_unavailable error={e}")
        while not self.stopping.is_set():
            metrics.delivery_heartbeat.set(time.time())
            health.beat(os.path.dirname(self.outbox.path), process=self.process)
            started = time.monotonic()
            try:
                handled = self.run_once()
                handled += self.housekeeping()
            except OutboxUnavailable as e:
                self.errors.error(f"outbox_unavailable error={e}")  # once per 10 s, counted
                handled = 0
            else:
                self.errors.ended("outbox_available_again")
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.error("delivery_orphaned parent=%d; exiting", self.parent_pid)
                break
            if self.planned > 1:
                # Webhooks come faster than turns: at most a turn every TURN_MIN_S.
                rest = TURN_MIN_S - (time.monotonic() - started)
                if rest > 0:
                    self.stopping.wait(rest)
            if not handled:
                # A long backlog stuck behind an outage makes each claim scan it; idle
                # polls then slow down so the scan stays a small share of a core.
                pause = max(self.poll_s, 4 * (time.monotonic() - started))
                if self.wakeup is not None:
                    self.wakeup.wait(self._idle_wait(pause))
                else:
                    self.stopping.wait(pause)
        log.info("delivery_stopped")

    def _idle_wait(self, least: float) -> float:
        """How long an idle worker with a wake-up socket sleeps: until the next work falls
        due (IDLE_MAX_S at most), or IDLE_POLL_S while due work waits (at least `least`)."""
        try:
            due = self.outbox.next_send_due()
        except OutboxUnavailable:
            return max(IDLE_POLL_S, least)
        most = IDLE_POLL_S if self.outbox.postgres else IDLE_MAX_S
        return max(least, until_due(due, time.time(), most=most, overdue=IDLE_POLL_S))

    def stop(self) -> None:
        """Stop after the current item (safe from a signal handler)."""
        self.stopping.set()
        if self.wakeup is not None:
            self.wakeup.poke()
