"""What the worker owes the outbox after a write failed (a full disk), and quiet logs of it.

When the outbox cannot take a write in the middle of a batch, the worker stops the
batch and remembers, in memory, the writes it owes: `sent` for a call DingTalk
accepted (it is never sent again by this process), and a release for each item it
holds but did not send. They are written first, before anything is claimed, once
the outbox takes writes again; so nothing waits for its lease to run out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

REPEAT_EVERY_S = 10.0


@dataclass
class Owed:
    sent: dict[int, list[int]] = field(default_factory=dict)  # item id -> task ids
    release: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sent or self.release)

    def settle(self, mark_sent: Callable[[int, list[int]], None],
               release: Callable[[int], None]) -> None:  # fmt: skip
        """Write what is owed. OutboxUnavailable if the outbox still refuses: the rest is kept."""
        while self.sent:
            item_id, task_ids = next(iter(self.sent.items()))
            mark_sent(item_id, task_ids)
            del self.sent[item_id]
        while self.release:
            release(self.release[0])
            self.release.pop(0)


class RepeatLimiter:
    """Logs one error at most once every `every_s`, saying how often it came meanwhile."""

    def __init__(self, logger: logging.Logger, every_s: float = REPEAT_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.logger = logger
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # message -> (logged at, repeats since)

    def error(self, message: str) -> None:
        now = self.clock()
        logged_at, repeats = self._seen.get(message, (None, 0))
        if logged_at is not None and now - logged_at < self.every_s:
            self._seen[message] = (logged_at, repeats + 1)
            return
        more = (
            f" (repeated {repeats} times in {now - logged_at:.0f}s)"
            if logged_at is not None
            else ""
        )
        self.logger.error("%s%s", message, more)
        self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.every_s}
        self._seen[message] = (now, 0)

    def ended(self, event: str) -> None:
        """The errors stopped: say how many were not logged since the last line, if any."""
        if not self._seen:
            return
        quiet = sum(n for _, n in self._seen.values())
        self.logger.warning("%s errors_not_logged=%d", event, quiet)
        self._seen.clear()
