"""The delivery process that `serve` starts: its worker, wired from settings, and its threads."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import threading

from receiver.delivery.escalate import Escalator
from receiver.delivery.followup import FollowUp
from receiver.delivery.limits import Limits
from receiver.delivery.outbox import Outbox
from receiver.delivery.planner import Planner
from receiver.delivery.replicas import Heartbeat
from receiver.delivery.robots import DryRunPoster, RobotDelivery
from receiver.delivery.sending import Sender
from receiver.delivery.shards import Shards
from receiver.delivery.state import State
from receiver.delivery.wake import Wakeup
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client, SendResult
from receiver.errors import ConfigError, OutboxUnavailable
from receiver.robots.client import RobotClient
from receiver.robots.limiter import RobotLimiter
from receiver.settings import Settings
from receiver.storage.postgres import database

log = logging.getLogger(__name__)

DIRECTORY_SYNC_CHECK_S = 60.0  # how often the sync thread asks whether a sync is due


class DryRunSender:
    """Logs what would be sent, as text a person reads. Used when credentials are not set."""

    dry_run = True  # the worker stores what it was given as `dry_run`, not `sent`

    def async_send(
        self, userid_list: list[str], msg: dict[str, object], dept_id_list: list[int]
    ) -> list[SendResult]:
        log.info(
            "dry_run to=%s depts=%s msgtype=%s\n%s",
            ",".join(userid_list), dept_id_list, msg.get("msgtype"), readable(msg),
        )  # fmt: skip
        return []


def readable(msg: dict[str, object]) -> str:
    """The message as DingTalk would show it: its title and text, lines as lines."""
    body = msg.get(str(msg.get("msgtype")), msg)
    if not isinstance(body, dict):
        return str(body)
    if isinstance(body.get("body"), dict):  # oa: head, then body
        body = body["body"]
    parts = [str(body[k]) for k in ("title", "content", "text", "markdown") if body.get(k)]
    if isinstance(body.get("form"), list):
        parts += [
            f"{f.get('key', '')}{f.get('value', '')}" for f in body["form"] if isinstance(f, dict)
        ]
    links = [str(body[k]) for k in ("single_url", "message_url") if body.get(k)]
    return "\n".join(parts + links) if parts else json.dumps(body, ensure_ascii=False, indent=1)


def make_sender(settings: Settings) -> Sender:
    if settings.dry_run:
        return DryRunSender()
    return Client(settings)


def make_worker(settings: Settings, parent_pid: int | None = None) -> Worker:
    return make_delivery(settings, parent_pid)[0]


def make_delivery(
    settings: Settings, parent_pid: int | None = None, process: int = 0
) -> tuple[Worker, Escalator | None]:
    """The send loop, and (process 0's) the escalations beside it on the same outbox and state.

    `process` is which of RECEIVER_DELIVERY_PROCESSES this is. Each plans its share of
    the alert groups (receiver.delivery.shards) and sends whatever it claims; process 0
    also checks sent messages (getsendresult) and purges old rows.
    """
    if settings.database_url:  # as SQLite's NORMAL below: redone at least once if lost
        database(settings.database_url).commit_asynchronously()
        database(settings.database_url).trust_recent_connections()
    outbox = Outbox(  # see Outbox: accept stays FULL
        settings.data_dir, synchronous="NORMAL", database_url=settings.database_url
    )
    state = State(settings, fallback=True, outbox=outbox)
    processes = settings.delivery_processes
    shards = Shards(settings.data_dir, process, processes) if processes > 1 else None
    planner = Planner(state, shards=shards)
    sender = make_sender(settings)
    limits = Limits(  # its own file: its writes never hold up a webhook's commit
        os.path.join(settings.data_dir, "limits.sqlite3"),
        rate=settings.send_rate,
        per_minute=settings.recipients_per_minute,
        daily=settings.user_daily_limit,
        database_url=settings.database_url,
    )
    robots = RobotDelivery(
        outbox,
        DryRunPoster() if settings.dry_run else RobotClient(timeout=settings.http_timeout,
                                                            proxy=settings.proxy),
        RobotLimiter(os.path.join(settings.data_dir, "limits.sqlite3"),
                     per_minute=settings.robot_per_minute, database_url=settings.database_url),
        lambda: planner.state.table.robots,
        language=settings.language,
        give_up_after_s=settings.give_up_after,
        backoff_min_s=settings.backoff_min,
        backoff_max_s=settings.backoff_max,
    )  # fmt: skip
    followup = None
    if isinstance(sender, Client) and process == 0:
        followup = FollowUp(outbox, sender, retry_s=max(settings.followup_delay, 30.0))
    escalator = None
    if process == 0:  # its own client: it runs on its own thread (read checks, status bars)
        escalator = Escalator(state, None if settings.dry_run else Client(settings))
    worker = Worker(
        outbox,
        sender,
        limits=limits,
        followup=followup,
        give_up_after_s=settings.give_up_after,
        backoff_min_s=settings.backoff_min,
        backoff_max_s=settings.backoff_max,
        followup_delay_s=settings.followup_delay,
        retention_s=settings.retention if process == 0 else None,
        # one item is at most: a token fetch, a send, a refresh and a second send
        lease_s=max(60.0, 4 * settings.http_timeout + 20),
        parent_pid=parent_pid,
        plan=planner.run_once,
        channels={"robot": robots},
        wakeup=Wakeup.open(settings.data_dir, process),  # None: poll every 50 ms, as before
        process=process,
    )
    return worker, escalator


def run_process(settings: Settings, parent_pid: int | None = None, process: int = 0) -> None:
    """Entry point of a delivery process that `serve` starts (`process` of
    RECEIVER_DELIVERY_PROCESSES; process 0 also runs the escalations and the directory sync)."""
    from receiver.logs import setup_logging

    setup_logging()
    stop = threading.Event()  # the one the worker watches, so no SIGTERM is ever missed
    running: list[Worker] = []

    def on_stop(*_: object) -> None:
        stop.set()
        for w in running:  # wake its wait on the socket
            w.stop()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    delay = 1.0
    while True:  # an outbox or a routing.yaml that fails now may be fine soon: wait, don't die
        try:
            worker, escalator = make_delivery(settings, parent_pid, process)
            break
        except OutboxUnavailable as e:
            log.error("outbox_unavailable error=%s; delivery retries in %.0fs", e, delay)
        except ConfigError as e:  # no routing.yaml that loads, and no last good one either
            problems = "; ".join(str(p) for p in e.problems)
            log.error("config_invalid problems=%s; delivery retries in %.0fs", problems, delay)
        if stop.wait(delay):
            return
        if parent_pid is not None and os.getppid() != parent_pid:  # serve was killed
            log.error("delivery_orphaned parent=%d; exiting", parent_pid)
            return
        delay = min(delay * 2, 30.0)
    worker.stopping = stop
    running.append(worker)
    if escalator is not None:  # process 0
        start_directory_sync(settings, stop)
        # Escalation steps, OA status bars and their read checks run on a thread of their
        # own, so that a busy send loop never makes a due step late.
        threading.Thread(
            target=escalator.run, args=(stop,), name="escalations", daemon=True
        ).start()
    heartbeat = Heartbeat(worker.outbox, worker.owner).start()  # receiver.delivery.replicas
    settle_heap()
    try:
        worker.run()
    finally:
        heartbeat.stop()
        if worker.wakeup is not None:
            worker.wakeup.close()


def settle_heap() -> None:
    """Move what start-up loaded (modules, the routing table, the templates) out of the
    garbage collector's reach, as the web workers do (receiver.web.worker): every full
    collection walked it all while the send loop stood still (bench/README.md)."""
    gc.collect()
    gc.freeze()


def start_directory_sync(settings: Settings, stop: threading.Event) -> None:
    """Re-sync the DingTalk directory every RECEIVER_DIRECTORY_SYNC_INTERVAL, off the send path.

    It runs here, in the one delivery process, not in every web worker; a sync that
    lands takes effect at once, because aliases are resolved when a message is routed.
    """
    from receiver.directory.sync import DirectorySync

    sync = DirectorySync(settings, lambda: Client(settings))
    if not sync.enabled:
        return

    def loop() -> None:
        while not stop.is_set():
            sync.maybe_sync()
            stop.wait(DIRECTORY_SYNC_CHECK_S)

    threading.Thread(target=loop, name="directory-sync", daemon=True).start()
