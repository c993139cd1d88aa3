"""Which alert groups a delivery process plans, when there are several of them.

With RECEIVER_DELIVERY_PROCESSES above 1, `serve` runs that many delivery processes
on one store. Each plans (routes and renders) the accepted webhooks of its share of
the alert groups: crc32 of the group key, modulo their number. So all webhooks of a
group are planned by one process, in the order received, and the newest of them can
replace the older ones in one turn (receiver.delivery.replacing); and no webhook is
routed and rendered twice, which is what an unsplit queue costs (`expand` lets only
one process write a webhook's items, but each would have paid for them). Sending is
not split: a claim leases its items to one process, and an item waits for the
earlier ones of its group (receiver.delivery.order), whoever sends them.

A process whose heartbeat file is older than TAKEOVER_S, or missing (not started
yet, restarting, stuck in a batch of slow calls), has its groups planned by the
others meanwhile. Should two then plan the same webhook, one writes it.
"""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from receiver.delivery import health

TAKEOVER_S = 10.0


@functools.lru_cache(maxsize=8192)  # a backlog's keys are looked at again each turn
def shard_of(group_key: str, processes: int) -> int:
    """The delivery process (0-based) that plans this alert group's webhooks."""
    return zlib.crc32(group_key.encode()) % processes


@dataclass(frozen=True)
class Shards:
    data_dir: str  # where the processes' heartbeat files are
    process: int
    processes: int

    def taken(self, now: float | None = None) -> Callable[[str], bool]:
        """Whether this process plans a group now: its own, and those of a quiet process."""
        now = time.time() if now is None else now
        mine = {self.process}
        for other in range(self.processes):
            if other == self.process:
                continue  # its own: taken whatever its heartbeat says, without a stat
            age = health.heartbeat_age(self.data_dir, now, other)
            if age is None or age > TAKEOVER_S:
                mine.add(other)
        if len(mine) == self.processes:
            return lambda group_key: True
        n = self.processes
        return lambda group_key: shard_of(group_key, n) in mine
