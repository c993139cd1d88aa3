"""The heartbeat of this delivery process, and taking over the work of one that died.

A thread of its own beats every `every_s` (2 s), whatever the send loop is doing: a
batch of slow DingTalk calls must not make a live replica look dead. On each beat it
also releases the leases of any replica whose heartbeat is older than `stale_s`
(15 s), so a replica killed mid-send has its items taken over within about 17 s;
once it has itself beaten for `stale_s` since it started or since the database came
back (`Heartbeat.tick`).
It runs on SQLite too, where the replicas are the delivery processes of one host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from receiver.delivery.outbox import Outbox
from receiver.errors import OutboxUnavailable

log = logging.getLogger(__name__)

BEAT_EVERY_S = 2.0
STALE_AFTER_S = 15.0


def release_stale(outbox: Outbox, *, stale_s: float, now: float) -> dict[str, int]:
    """Give back the items of each replica whose heartbeat is older than `stale_s`, as for
    any dead claimer (`release_owner`); owner -> items released. Two replicas doing this
    at once release each item once: the second finds nothing left."""
    released = {}
    for owner in outbox.stale_replicas(stale_s=stale_s, now=now):
        released[owner] = outbox.release_owner(owner)
        outbox.forget_stale(owner, before=now - stale_s)
    return released


class Heartbeat:
    def __init__(
        self,
        outbox: Outbox,
        owner: str,
        *,
        every_s: float = BEAT_EVERY_S,
        stale_s: float = STALE_AFTER_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.owner = owner
        self.every_s = every_s
        self.stale_s = stale_s
        self.clock = clock
        self.started_at = clock()
        self.beating_since: float | None = None  # the first of an unbroken run of beats
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._down = ""  # the last database error, logged once

    def tick(self) -> dict[str, int]:
        """Beat once, then release the stale replicas' leases; what was released.

        Only once this replica has itself beaten for `stale_s` without a failure: a
        replica that has just started, or whose database has just come back, cannot
        tell a dead replica from a live one that could not beat either. Without this
        wait, the first replica back after an outage over 15 s released the leases of
        every other, and their items in flight went out twice.
        """
        now = self.clock()
        try:
            self.outbox.beat(self.owner, started_at=self.started_at, now=now)
        except OutboxUnavailable:
            self.beating_since = None
            raise
        if self.beating_since is None:
            self.beating_since = now
        if now - self.beating_since < self.stale_s:
            return {}
        released = release_stale(self.outbox, stale_s=self.stale_s, now=now)
        for owner, n in released.items():
            log.warning("replica_lost owner=%s items_released=%d", owner, n)
        return released

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
                if self._down:
                    log.info("heartbeat_resumed owner=%s", self.owner)
                self._down = ""
            except OutboxUnavailable as e:
                if str(e) != self._down:
                    log.error("heartbeat_failed owner=%s error=%s", self.owner, e)
                self._down = str(e)
            self.stopping.wait(self.every_s)

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            self.outbox.forget(self.owner)
        except OutboxUnavailable as e:  # it will look stale in 15 s: the same outcome
            log.warning("heartbeat_not_removed owner=%s error=%s", self.owner, e)
