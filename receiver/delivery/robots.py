"""Delivering group robot copies: the worker's sender for items of the `robot` channel.

The worker hands each robot item here (Worker `channels`). Per robot:
- the limiter gives a slot, or the item is held until there is one (it never waits
  in the loop, and never blocks a work notification);
- the post that takes a window's last slot carries a digest of everything still
  queued for that robot, so a storm makes at most the limit's posts a minute and
  loses nothing; the oldest message leads the digest and is never dropped;
- 410100 (too fast) blocks the robot for DingTalk's 10 minutes and retries after;
  other retryable errors back off as work notifications do; 310000 and 300001 are
  permanent, and the dead letter says what to fix in the robot's settings.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from receiver import metrics
from receiver.delivery.outbox import Item, Outbox
from receiver.delivery.pausing import backoff
from receiver.delivery.sending import BACKOFF_BASE_S, BACKOFF_CAP_S, GIVE_UP_AFTER_S
from receiver.errors import DingTalkError, RetryableError, ThrottledError
from receiver.messages.robot import digest
from receiver.robots.limiter import RobotLimiter
from receiver.routing.robots import Robot

log = logging.getLogger(__name__)


class Poster(Protocol):
    def post(self, robot: Robot, body: dict[str, Any]) -> None: ...


class DryRunPoster:
    """Logs what would be posted. Used when DingTalk credentials are not set (dry-run)."""

    def post(self, robot: Robot, body: dict[str, Any]) -> None:
        kind = str(body.get("msgtype"))
        at = ",".join((body.get("at") or {}).get("atUserIds") or [])
        log.info("dry_run robot=%s at=%s msg=%s", robot.name, at, body.get(kind))


class RobotDelivery:
    def __init__(
        self,
        outbox: Outbox,
        poster: Poster,
        limiter: RobotLimiter,
        robots: Callable[[], Mapping[str, Robot]],
        *,
        language: str = "zh",
        give_up_after_s: float = GIVE_UP_AFTER_S,
        backoff_min_s: float = BACKOFF_BASE_S,
        backoff_max_s: float = BACKOFF_CAP_S,
        lease_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.poster = poster
        self.limiter = limiter
        self.robots = robots
        self.language = language
        self.give_up_after_s = give_up_after_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.lease_s = lease_s
        self.clock = clock

    def handle(self, item: Item, owner: str) -> bool:
        """Post one robot item; True if it is done (sent, merged or dead)."""
        if not self.outbox.renew(item.id, owner, self.lease_s):
            return True  # merged into a digest meanwhile, or another process has it
        name = item.robot or ""
        robot = self.robots().get(name)
        if robot is None:
            error = f"robot {name!r} is no longer in routing.yaml"
            self.outbox.mark_dead(item.id, error=error, errcode=None, owner=owner)
            metrics.sends.labels("dead", "permanent").inc()
            metrics.dead_lettered.inc()
            log.error("dead_lettered id=%d robot=%s permanent error=%s", item.id, name, error)
            return True
        now = self.clock()
        slot = self.limiter.reserve(name, now)
        if slot.wait > 0:
            reason = f"robot {name}: {self.limiter.per_minute} posts a minute"
            self.outbox.hold(item.id, until=now + slot.wait, reason=reason)
            metrics.held.labels("robot_rate").inc()
            log.info("held id=%d robot=%s for=%.1fs reason=rate", item.id, name, slot.wait)
            return False
        try:
            body = self._merged(item, name, owner) if slot.left == 0 else item.msg
            self.poster.post(robot, body)
        except DingTalkError as e:
            return self._failed(item, robot, e, owner)
        except Exception as e:  # a surprise must not kill the loop; its text may hold the URL
            where = traceback.extract_tb(e.__traceback__)[-1]
            what = f"unexpected {type(e).__name__} at {where.filename}:{where.lineno}"
            log.error("send_failed_unexpectedly id=%d robot=%s error=%s", item.id, name, what)
            return self._failed(item, robot, RetryableError(f"robot {name}: {what}"), owner)
        self.outbox.mark_sent(item.id, [])
        metrics.sends.labels("sent", "").inc()
        metrics.robot_posts.labels(name, "sent").inc()
        log.info("sent id=%d robot=%s receiver=%s", item.id, name, item.receiver)
        return True

    def _merged(self, item: Item, name: str, owner: str) -> dict[str, Any]:
        """The window's last post: `item` carrying everything still queued for its robot."""
        backlog = self.outbox.robot_backlog(name, item.id, owner)
        if not backlog:
            return item.msg
        taken, body = self.outbox.merge_robot(item, backlog, owner, self._digest)
        if taken:
            metrics.robot_digests.inc()
            log.info("robot_digest id=%d robot=%s merged=%s", item.id, name, taken)
        return body

    def _digest(self, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        return digest(bodies, language=self.language)

    def _failed(self, item: Item, robot: Robot, e: DingTalkError, owner: str) -> bool:
        errclass = type(e).__name__.removesuffix("Error").lower()
        age = self.clock() - item.due_since
        if isinstance(e, ThrottledError):
            self.limiter.block(robot.name, self.clock() + e.retry_after)
        if e.retryable and age < self.give_up_after_s:
            delay = (
                e.retry_after
                if isinstance(e, ThrottledError)
                else backoff(item.attempts, base=self.backoff_min_s, cap=self.backoff_max_s)
            )
            self.outbox.mark_retry(item.id, delay_s=delay, error=str(e), errcode=e.errcode,
                                   owner=owner)  # fmt: skip
            metrics.sends.labels("retry", errclass).inc()
            metrics.robot_posts.labels(robot.name, "retry").inc()
            metrics.retries.inc()
            level = logging.INFO if str(e) == item.last_error else logging.WARNING
            log.log(level, "retry_scheduled id=%d robot=%s attempt=%d in=%.1fs error=%s",
                    item.id, robot.name, item.attempts + 1, delay, e)  # fmt: skip
            return False
        self.outbox.mark_dead(item.id, error=str(e), errcode=e.errcode, owner=owner)
        metrics.sends.labels("dead", errclass).inc()
        metrics.robot_posts.labels(robot.name, "dead").inc()
        metrics.dead_lettered.inc()
        why = f"gave up after {age:.0f}s" if e.retryable else "permanent"
        log.error("dead_lettered id=%d robot=%s %s errcode=%s error=%s",
                  item.id, robot.name, why, e.errcode, e)  # fmt: skip
        return True
