"""What becomes of a message DingTalk refused for its own sake (its content or its
recipients): cut and sent again when it was too long, retried with its own backoff,
or dead-lettered once permanent or too old. A platform failure never comes here: it
pauses sending for everyone instead (receiver.delivery.pausing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from receiver import metrics
from receiver.delivery.failures import Failure, Kind
from receiver.delivery.outbox import Item, Outbox
from receiver.delivery.pausing import backoff
from receiver.errors import DingTalkError
from receiver.messages.budget import msg_size, shrink

log = logging.getLogger(__name__)

WHITELIST_ERRCODE = 60020


class Verdicts:
    def __init__(
        self,
        outbox: Outbox,
        owner: str,
        clock: Callable[[], float],
        *,
        give_up_after_s: float,
        backoff_min_s: float,
        backoff_max_s: float,
    ) -> None:
        self.outbox = outbox
        self.owner = owner
        self.clock = clock
        self.give_up_after_s = give_up_after_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s

    def failed(self, item: Item, e: DingTalkError, failure: Failure) -> bool:
        """Record the verdict on `item`; True when it is finished (dead), False when it waits."""
        age = self.clock() - item.due_since
        errclass = type(e).__name__.removesuffix("Error").lower()
        smaller = None
        if failure.kind is Kind.TOO_LONG:
            smaller = shrink(item.msg, msg_size(item.msg) * 3 // 4)
        if smaller is not None:  # cut it and send it again, rather than lose it for its size
            self.outbox.mark_retry(item.id, delay_s=0, error=str(e), errcode=e.errcode,
                                   owner=self.owner, msg=smaller)  # fmt: skip
            metrics.sends.labels("retry", "too_long").inc()
            log.warning("message_shrunk id=%d from=%d to=%d bytes error=%s",
                        item.id, msg_size(item.msg), msg_size(smaller), e)  # fmt: skip
            return False
        if failure.kind is Kind.MESSAGE and age < self.give_up_after_s:
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
