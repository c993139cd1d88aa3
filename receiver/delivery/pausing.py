"""Pausing sending for everyone, and ending the pause: the worker's side of it.

The state is the `pause` row of the outbox (receiver.delivery.outbox_pause), so
every process that sends sees it. Here: what a platform failure does to the item
that met it (given back, uncounted), when the next probe goes
(receiver.delivery.failures), and what the first answer after it settles.
"""

from __future__ import annotations

import logging
import random
import time

from receiver import metrics
from receiver.delivery.failures import OUTAGE_PROBE_MAX_S, Failure
from receiver.delivery.outbox import Item, Outbox
from receiver.delivery.outbox_pause import PauseState
from receiver.errors import DingTalkError

log = logging.getLogger("receiver.delivery.worker")  # the worker's events, under its name


def backoff(attempts: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Capped exponential backoff with full jitter, never below half the step."""
    step = min(cap, base * 2.0 ** min(attempts, 20))
    return step / 2 + random.uniform(0, step / 2)


class Pauses:
    def __init__(self, outbox: Outbox, backoff_min_s: float, backoff_max_s: float,
                 give_up_after_s: float) -> None:  # fmt: skip
        self.outbox = outbox
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.give_up_after_s = give_up_after_s

    def pause(self, item: Item, e: DingTalkError, failure: Failure, pause: PauseState | None,
              owner: str) -> None:  # fmt: skip
        """DingTalk fails for everyone: pause, give the item back uncounted, age out the old."""
        failures = (pause.failures if pause is not None else 0) + 1
        cap = min(self.backoff_max_s, OUTAGE_PROBE_MAX_S)
        probe_in = failure.probe_after(failures, min(self.backoff_min_s, cap), cap)
        self.outbox.pause(reason=failure.reason, error=str(e), probe_in=probe_in, item_id=item.id)
        self.outbox.release_paused(item.id, owner, error=str(e), errcode=e.errcode)
        metrics.sends.labels("paused", failure.reason).inc()
        if pause is None or pause.reason != failure.reason:
            log.warning("sending_paused reason=%s id=%d probe_in=%.1fs error=%s",
                        failure.reason, item.id, probe_in, e)  # fmt: skip
        else:
            log.info("probe_failed reason=%s id=%d failures=%d probe_in=%.1fs error=%s",
                     failure.reason, item.id, failures, probe_in, e)  # fmt: skip
        why = f"gave up after {self.give_up_after_s:.0f}s: sending paused ({failure.reason}): {e}"
        for dead in self.outbox.expire(self.give_up_after_s, error=why, errcode=e.errcode):
            metrics.sends.labels("dead", failure.reason).inc()
            metrics.dead_lettered.inc()
            log.error("dead_lettered id=%d %s", dead, why)

    def resume(self, answered: int) -> None:
        """A call (of item `answered`) got an answer: end the pause.

        If only one item's calls failed, and another's now went through, those failures
        were that message's own: it takes its own backoff, and holds up nobody else.
        """
        was = self.outbox.resume()
        if was is None:
            return
        log.warning("sending_resumed reason=%s after=%.1fs failures=%d",
                    was.reason, time.time() - was.since, was.failures)  # fmt: skip
        if was.suspect is None or was.confirmed or was.suspect == answered:
            return
        item = self.outbox.get(was.suspect)
        if item is None:
            return
        delay = backoff(item.attempts, base=self.backoff_min_s, cap=self.backoff_max_s)
        error = f"{was.error} (only this message failed; others went through)"
        if self.outbox.charge(item.id, delay_s=delay, error=error, errcode=item.errcode):
            metrics.sends.labels("retry", "own").inc()
            metrics.retries.inc()
            level = logging.INFO if error == item.last_error else logging.WARNING
            log.log(level, "retry_scheduled id=%d attempt=%d in=%.1fs error=%s",
                    item.id, item.attempts + 1, delay, error)  # fmt: skip
