"""The delivery worker: plan accepted webhooks, claim from the outbox, send, record.

It runs in its own process, started by `serve`. Each turn of its loop first plans
the webhooks the web workers accepted (receiver.delivery.planner: route and render them
into outbox items), then sends. In dry-run mode (no credentials) it logs each
message instead of sending it, and marks it sent. Besides sending, its loop runs
the getsendresult follow-up and purges old sent items.

Order: items are handled in id order, and an item is not claimed while an earlier
item for one of its recipients is unfinished (Outbox.claim). When an item fails,
the items after it in the same batch that share a recipient are given back.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from receiver import metrics
from receiver.delivery import health
from receiver.delivery.followup import FollowUp
from receiver.delivery.limits import Limits, next_day
from receiver.delivery.outbox import Item, Outbox
from receiver.delivery.owner import owner_is_dead, process_owner
from receiver.dingtalk.client import ERRCODES, SendResult, is_too_long, redact
from receiver.errors import DingTalkError, OutboxUnavailable, RetryableError
from receiver.messages.budget import msg_size, shrink

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
GIVE_UP_AFTER_S = 24 * 3600.0
PURGE_EVERY_S = 600.0
WHITELIST_ERRCODE = 60020
# A refusal for size comes as HTTP 413 or a bad-parameter errcode. A code the table gives
# another meaning is that, whatever its errmsg says: 90020's says 超过 (the monthly quota).
SIZE_ERRCODES = frozenset({40035, 400002})


class Sender(Protocol):
    def async_send(
        self, userid_list: list[str], msg: dict[str, object], dept_id_list: list[int]
    ) -> list[SendResult]: ...


class ChannelSender(Protocol):
    """Delivers the items of one channel other than work notifications (a group robot)."""

    def handle(self, item: Item, owner: str) -> bool: ...


def backoff(attempts: int, *, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> float:
    """Capped exponential backoff with full jitter, never below half the step."""
    step = min(cap, base * 2.0 ** min(attempts, 20))
    return step / 2 + random.uniform(0, step / 2)


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
    ) -> None:
        self.channels = dict(channels or {})  # item.channel -> its sender; "work" is ours
        self.parent_pid = parent_pid
        self.plan = plan
        self.outbox = outbox
        self.sender = sender
        self.limits = limits
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
        self.stopping = threading.Event()
        self._last_purge = 0.0
        self._claimed_at = 0.0  # time.monotonic() of the last claim

    def run_once(self) -> int:
        """Plan what was accepted, then claim and handle one batch; return how much was done."""
        planned = self.plan() if self.plan is not None else 0
        return planned + self.send_batch()

    def send_batch(self) -> int:
        """Claim and handle one batch; return how many items were handled."""
        items = self.outbox.claim(limit=10, lease_s=self.lease_s, owner=self.owner)
        self._claimed_at = time.monotonic()
        behind: set[str] = set()  # recipients of an item in this batch that did not go out
        for n, item in enumerate(items):
            if self.stopping.is_set():
                for rest in items[n:]:
                    self.outbox.release(rest.id, self.owner)
                return n
            if item.recipients & behind:
                self.outbox.release(item.id, self.owner)  # keep its place behind the failure
                behind |= item.recipients
                continue
            if not self.handle(item):
                behind |= item.recipients
        return len(items)

    def handle(self, item: Item) -> bool:
        """Send one item; True if it went out (or is dead), False if it is still pending."""
        if item.channel in self.channels:
            return self.channels[item.channel].handle(item, self.owner)
        # Renew before working on an item, unless the claim is recent: a lease this young
        # is ours (only a dead owner's or an expired lease is taken), and a write saved
        # per item is a write that does not hold up a webhook's commit.
        fresh = time.monotonic() - self._claimed_at < self.lease_s / 4
        if not fresh and not self.outbox.renew(item.id, self.owner, self.lease_s):
            log.warning("lease_lost id=%d", item.id)
            return False
        if self.limits is not None:
            item = self._hold_over_cap(item)
            if not item.userids and not item.departments:
                return True
            if not self._wait_for_room(item):
                return False
        try:
            results = self.sender.async_send(list(item.userids), item.msg, list(item.departments))
        except DingTalkError as e:
            return self._failed(item, e)
        except Exception as e:  # a reply nobody foresaw: retry it, never let it kill the loop
            where = traceback.extract_tb(e.__traceback__)[-1]
            what = f"unexpected {type(e).__name__}: {e} at {where.filename}:{where.lineno}"
            log.error("send_failed_unexpectedly id=%d error=%s", item.id, redact(what))
            return self._failed(item, RetryableError(redact(what)))
        task_ids = [r.task_id for r in results]
        self.outbox.mark_sent(item.id, task_ids, followup_after_s=self.followup_delay_s)
        metrics.sends.labels("sent", "").inc()
        log.info("sent id=%d receiver=%s task_ids=%s", item.id, item.receiver, task_ids)
        if self.limits is not None:
            for userid in self.limits.count_sent(item.userids):
                metrics.user_daily_quota_warnings.inc()
                log.warning(
                    "user_daily_quota_warning userid=%s sent=%d%% of %d today",
                    userid, 80, self.limits.daily,
                )  # fmt: skip
        return True

    def _hold_over_cap(self, item: Item) -> Item:
        """Users past the daily cap wait for tomorrow in a held item; the rest go now."""
        assert self.limits is not None
        over = self.limits.over_daily(item.userids)
        if not over:
            return item
        until = next_day(self.clock())
        reason = f"daily limit of {self.limits.daily} messages per user reached"
        held = self.outbox.hold(item.id, until=until, reason=reason, userids=over)
        metrics.held.labels("user_daily_limit").inc(len(over))
        log.warning(
            "held id=%d as=%d userids=%s until=%s reason=%s",
            item.id, held, ",".join(over), time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                         time.localtime(until)), reason,
        )  # fmt: skip
        if held == item.id:
            return replace(item, userids=(), departments=())
        return replace(item, userids=tuple(u for u in item.userids if u not in set(over)))

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

    def _failed(self, item: Item, e: DingTalkError) -> bool:
        age = self.clock() - item.due_since
        errclass = type(e).__name__.removesuffix("Error").lower()
        about_size = e.errcode is None or e.errcode in SIZE_ERRCODES or e.errcode not in ERRCODES
        too_long = is_too_long(e) and about_size
        smaller = shrink(item.msg, msg_size(item.msg) * 3 // 4) if too_long else None
        if smaller is not None:  # cut it and send it again, rather than lose it for its size
            self.outbox.mark_retry(item.id, delay_s=0, error=str(e), errcode=e.errcode,
                                   owner=self.owner, msg=smaller)  # fmt: skip
            metrics.sends.labels("retry", "too_long").inc()
            log.warning("message_shrunk id=%d from=%d to=%d bytes error=%s",
                        item.id, msg_size(item.msg), msg_size(smaller), e)  # fmt: skip
            return False
        if e.retryable and age < self.give_up_after_s:
            delay = backoff(item.attempts, base=self.backoff_min_s, cap=self.backoff_max_s)
            self.outbox.mark_retry(
                item.id, delay_s=delay, error=str(e), errcode=e.errcode, owner=self.owner
            )
            metrics.sends.labels("retry", errclass).inc()
            metrics.retries.inc()
            # A retry warning only when the error changes; the same one again is INFO.
            level = logging.INFO if str(e) == item.last_error else logging.WARNING
            log.log(level, "retry_scheduled id=%d attempt=%d in=%.1fs error=%s",
                    item.id, item.attempts + 1, delay, e)  # fmt: skip
            return False
        self.outbox.mark_dead(item.id, error=str(e), errcode=e.errcode, owner=self.owner)
        metrics.sends.labels("dead", errclass).inc()
        metrics.dead_lettered.inc()
        why = f"gave up after {age:.0f}s" if e.retryable else "permanent"
        log.error("dead_lettered id=%d receiver=%s %s errcode=%s error=%s",
                  item.id, item.receiver, why, e.errcode, e)  # fmt: skip
        if e.errcode == WHITELIST_ERRCODE:
            log.error(
                "dingtalk_ip_not_whitelisted: DingTalk refuses calls from this host's egress IP."
                " Whitelist the egress IP in the app's settings in the DingTalk developer console,"
                " or set DINGTALK_PROXY to a proxy whose IP is whitelisted; then run"
                " `dingtalk-receiver outbox retry --dead`"
            )
        return True

    def recover_orphans(self) -> None:
        """Items leased by a delivery process on this host that died go back at once."""
        for owner in self.outbox.owners():
            if owner != self.owner and owner_is_dead(owner):
                n = self.outbox.release_owner(owner)
                log.warning("lease_recovered owner=%s items=%d", owner, n)

    def housekeeping(self) -> int:
        done = self.followup.run_once() if self.followup is not None else 0
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
            log.error("outbox_unavailable error=%s", e)
        while not self.stopping.is_set():
            metrics.delivery_heartbeat.set(time.time())
            health.beat(os.path.dirname(self.outbox.path))
            started = time.monotonic()
            try:
                handled = self.run_once()
                handled += self.housekeeping()
            except OutboxUnavailable as e:
                log.error("outbox_unavailable error=%s", e)
                handled = 0
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.error("delivery_orphaned parent=%d; exiting", self.parent_pid)
                break
            if not handled:
                # A long backlog stuck behind an outage makes each claim scan it; idle
                # polls then slow down so the scan stays a small share of a core.
                self.stopping.wait(max(self.poll_s, 4 * (time.monotonic() - started)))
        log.info("delivery_stopped")
