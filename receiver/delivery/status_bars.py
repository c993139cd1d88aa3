"""OA status bar changes: queued with an ack or a resolve, sent by the delivery process.

An OA message still waiting to be sent when its group is acknowledged or resolved (a
retry, a pause, a hold) carries the bar it was rendered with. The change is kept per
(receiver, group) in `group_bars`, and `catch_up` queues it for such a message's task
ids once it is sent.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

BAR_WINDOW_S = 24 * 3600.0  # DingTalk changes an OA status bar within 24 h of the send
BAR_ATTEMPTS = 8


@dataclass(frozen=True)
class Bar:
    """An OA status bar change to send."""

    id: int
    task_id: int
    value: str
    bg: str
    attempts: int
    done_at: float | None = None
    last_error: str | None = None


OA_HEAD = '{"msgtype":"oa"'  # how an OA item's stored msg begins (compact JSON)
OA_PREFIX = OA_HEAD + "%"


def queue_bars(db: sqlite3.Connection, receiver: str, group_key: str, since: float,
               value: str, bg: str, now: float) -> None:  # fmt: skip
    """Queue a status bar change for every OA message of this receiver's group sent since."""
    rows = db.execute(
        "SELECT DISTINCT o.task_ids FROM notified n JOIN outbox o ON o.id=n.item_id"
        " WHERE n.receiver=? AND n.group_key=? AND n.at>=? AND o.state='sent' AND o.msg LIKE ?",
        (receiver, group_key, since, OA_PREFIX),
    ).fetchall()
    tasks = dict.fromkeys(t for r in rows for t in json.loads(r["task_ids"] or "[]"))
    db.execute(
        "INSERT INTO group_bars (receiver, group_key, value, bg, at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (receiver, group_key) DO UPDATE"
        " SET value=excluded.value, bg=excluded.bg, at=excluded.at",
        (receiver, group_key, value, bg, now),
    )
    db.executemany(
        "INSERT INTO bar_updates (task_id, value, bg, created_at, next_attempt_at)"
        " VALUES (?,?,?,?,?)",
        [(t, value, bg, now, now) for t in tasks],
    )


def catch_up(db: sqlite3.Connection, receiver: str, group_key: str, planned_at: float,
             task_ids: list[int], now: float) -> None:  # fmt: skip
    """An OA message planned at `planned_at` was just sent: if its group's bar changed
    since (acknowledged, resolved), queue that change for its task ids too."""
    row = db.execute(
        "SELECT value, bg FROM group_bars WHERE receiver=? AND group_key=? AND at>=?",
        (receiver, group_key, planned_at),
    ).fetchone()
    if row is not None:
        db.executemany(
            "INSERT INTO bar_updates (task_id, value, bg, created_at, next_attempt_at)"
            " VALUES (?,?,?,?,?)",
            [(t, row["value"], row["bg"], now, now) for t in dict.fromkeys(task_ids)],
        )


def incident_since(db: sqlite3.Connection, receiver: str, group_key: str, default: float) -> float:
    row = db.execute(
        "SELECT started_at FROM escalations WHERE receiver=? AND group_key=? AND closed=0"
        " ORDER BY id DESC LIMIT 1",
        (receiver, group_key),
    ).fetchone()
    return float(row["started_at"]) if row is not None else default
