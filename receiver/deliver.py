"""The delivery worker: claim from the outbox, send through DingTalk, record the outcome.

It runs in its own process, started by `serve`. In dry-run mode (no credentials)
it logs each message instead of sending it, and marks it sent.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Protocol

from . import health, metrics
from .dingtalk import Client, SendResult
from .errors import DingTalkError, OutboxUnavailable
from .outbox import Item, Outbox
from .settings import Settings

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
GIVE_UP_AFTER_S = 24 * 3600.0


class Sender(Protocol):
    def async_send(
        self, userid_list: list[str], msg: dict[str, object], dept_id_list: list[int]
    ) -> list[SendResult]: ...


class DryRunSender:
    """Logs what would be sent. Used when DingTalk credentials are not set."""

    def async_send(
        self, userid_list: list[str], msg: dict[str, object], dept_id_list: list[int]
    ) -> list[SendResult]:
        body = msg.get(str(msg.get("msgtype")), msg)
        log.info("dry_run to=%s depts=%s msg=%s", ",".join(userid_list), dept_id_list, body)
        return []


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
        poll_s: float = 0.2,
        give_up_after_s: float = GIVE_UP_AFTER_S,
        clock: Callable[[], float] = time.time,
        parent_pid: int | None = None,
    ) -> None:
        self.parent_pid = parent_pid
        self.outbox = outbox
        self.sender = sender
        self.poll_s = poll_s
        self.give_up_after_s = give_up_after_s
        self.clock = clock
        self.stopping = threading.Event()

    def run_once(self) -> int:
        """Claim and handle one batch; return how many items were handled."""
        items = self.outbox.claim(limit=10)
        for n, item in enumerate(items):
            if self.stopping.is_set():
                for rest in items[n:]:
                    self.outbox.release(rest.id)
                return n
            self.handle(item)
        return len(items)

    def handle(self, item: Item) -> None:
        try:
            results = self.sender.async_send(list(item.userids), item.msg, list(item.departments))
        except DingTalkError as e:
            self._failed(item, e)
            return
        self.outbox.mark_sent(item.id, [r.task_id for r in results])
        metrics.sends.labels("sent", "").inc()
        log.info(
            "sent id=%d receiver=%s task_ids=%s",
            item.id,
            item.receiver,
            [r.task_id for r in results],
        )

    def _failed(self, item: Item, e: DingTalkError) -> None:
        age = self.clock() - item.created_at
        errclass = type(e).__name__.removesuffix("Error").lower()
        if e.retryable and age < self.give_up_after_s:
            delay = backoff(item.attempts)
            self.outbox.mark_retry(item.id, delay_s=delay, error=str(e), errcode=e.errcode)
            metrics.sends.labels("retry", errclass).inc()
            metrics.retries.inc()
            log.warning("retry_scheduled id=%d in=%.1fs error=%s", item.id, delay, e)
        else:
            self.outbox.mark_dead(item.id, error=str(e), errcode=e.errcode)
            metrics.sends.labels("dead", errclass).inc()
            metrics.dead_lettered.inc()
            log.error("dead_lettered id=%d error=%s", item.id, e)

    def run(self) -> None:
        log.info("delivery_started")
        while not self.stopping.is_set():
            metrics.delivery_heartbeat.set(time.time())
            health.beat(os.path.dirname(self.outbox.path))
            try:
                handled = self.run_once()
            except OutboxUnavailable as e:
                log.error("outbox_unavailable error=%s", e)
                handled = 0
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.error("delivery_orphaned parent=%d; exiting", self.parent_pid)
                break
            if not handled:
                self.stopping.wait(self.poll_s)
        log.info("delivery_stopped")


def make_sender(settings: Settings) -> Sender:
    if settings.dry_run:
        return DryRunSender()
    return Client(settings)


def run_process(settings: Settings, parent_pid: int | None = None) -> None:
    """Entry point of the delivery process that `serve` starts."""
    from .logs import setup_logging

    setup_logging()
    worker = Worker(Outbox(settings.data_dir), make_sender(settings), parent_pid=parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: worker.stopping.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    worker.run()
