"""Acknowledging a group: from the ack page (receiver.web.ack) or `dingtalk-receiver ack`.

An ack is recorded for each receiver of the notification, and stops their active
escalations, in one transaction; with it go the "acknowledged by 张三" messages of
receivers with `notify_ack: true`. "Acknowledge and silence" then creates an
Alertmanager silence matching the group's labels (ALERTMANAGER_URL, API v2).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime

from receiver import metrics
from receiver.delivery.escalate import PARSERS, name_of
from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import MAX_USERIDS_PER_CALL, Entry
from receiver.delivery.silences import create_silence
from receiver.delivery.state import State
from receiver.errors import SilenceError
from receiver.messages.oa import ACKED_BAR
from receiver.messages.render import notification_id
from receiver.model import Notification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AckOutcome:
    receivers: tuple[str, ...]  # acknowledged now; () when this person already had
    name: str  # the person's name from the directory (or the userid)
    silence_id: str | None = None
    silence_error: str | None = None


def acknowledge(
    state: State,
    nid: int,
    userid: str,
    *,
    via: str,
    silence_s: float | None = None,
    now: float | None = None,
) -> AckOutcome:
    """Acknowledge notification `nid`'s group as `userid`. LookupError: no such notification."""
    now = time.time() if now is None else now
    outbox = state.outbox
    row = outbox.planned_notification(nid)
    if row is None:
        raise LookupError(f"no notification {nid}")
    n = PARSERS[row.source](row.body)
    name = name_of(state.directory, userid)

    # Read before the ack's transaction (a read inside it would nest); written with it.
    tell = told(state, outbox, n, row.group_key, list(row.receivers), userid, name, now)

    def effects(db: sqlite3.Connection, receivers: list[str]) -> None:
        entries = [e for e in tell if e.receiver in receivers]
        if entries:
            Outbox._insert(db, entries, row.source, row.group_key, now)

    bar = (state.renderer.words["acked_by"].format(who=name), ACKED_BAR)
    done = outbox.record_ack(nid, userid, via=via, at=now, extra=effects, bar=bar)
    if done:
        metrics.acks.labels(via).inc()
        metrics.time_to_ack.observe(max(0.0, now - row.received_at))
        log.info("acknowledged notification=%d userid=%s receivers=%s via=%s",
                 nid, userid, ",".join(done), via)  # fmt: skip
    outcome = AckOutcome(tuple(done), name)
    if silence_s is None:
        return outcome
    try:
        silence_id = silence(state, n, nid, userid, name, row.receivers, silence_s, now)
    except SilenceError as e:
        log.warning("silence_failed notification=%d userid=%s error=%s", nid, userid, e)
        return AckOutcome(outcome.receivers, name, silence_error=str(e))
    outbox.set_silence(nid, userid, silence_id)
    log.info("silenced notification=%d userid=%s silence=%s for=%.0fs",
             nid, userid, silence_id, silence_s)  # fmt: skip
    return AckOutcome(outcome.receivers, name, silence_id=silence_id)


def silence(state: State, n: Notification, nid: int, userid: str, name: str,
            receivers: tuple[str, ...], seconds: float, now: float) -> str:  # fmt: skip
    url = state.settings.alertmanager_url
    if not url:
        raise SilenceError("ALERTMANAGER_URL is not set")
    labels = n.group_labels or n.common_labels
    comment = (
        f"Acknowledged from DingTalk by {name} ({userid}) through dingtalk-receiver:"
        f" notification {nid}, receiver {','.join(receivers)}, group {n.group_key}"
    )
    return create_silence(
        url, labels, starts=now, ends=now + seconds, created_by=name, comment=comment,
        timeout=state.settings.http_timeout,
    )  # fmt: skip


def told(state: State, outbox: Outbox, n: Notification, group_key: str, receivers: list[str],
         userid: str, name: str, now: float) -> list[Entry]:  # fmt: skip
    """The "acknowledged by 张三" messages to the others, for receivers with notify_ack."""
    table, renderer = state.table, state.renderer
    out: list[Entry] = []
    for receiver in receivers:
        r = table.receivers.get(receiver)
        if r is None or not r.notify_ack or r.msgtype == "oa":  # oa: its status bar says it
            continue
        since = outbox.incident_start(receiver, group_key, now - state.settings.ack_ttl)
        others = [
            u for u in dict.fromkeys(x.userid for x in outbox.reached(receiver, group_key, since))
            if u != userid and not u.startswith("dept:")
        ]  # fmt: skip
        if not others:
            continue
        at = datetime.fromtimestamp(now, renderer.tz)
        stamp = f"{at:%Y-%m-%d %H:%M:%S} · {notification_id(n, at)}"
        line = renderer.words["acked_by"].format(who=name)
        content = f"{renderer.title(n)}\n{line}\n\n{stamp}"
        msg = {"msgtype": "text", "text": {"content": content}}
        for i in range(0, len(others), MAX_USERIDS_PER_CALL):
            out.append(Entry(receiver, msg, tuple(others[i : i + MAX_USERIDS_PER_CALL])))
    return out
