"""The outbox's rows as the code reads them: an item (one DingTalk call's worth of work)
and a pending webhook (accepted, not yet planned)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Item:
    id: int
    state: str
    source: str
    receiver: str
    group_key: str
    msg: dict[str, Any]
    userids: tuple[str, ...]
    departments: tuple[int, ...]
    attempts: int
    created_at: float
    next_attempt_at: float
    task_ids: tuple[int, ...]
    errcode: int | None
    last_error: str | None
    due_since: float = 0.0
    owner: str | None = None
    hold_reason: str | None = None
    sent_at: float | None = None
    followup_at: float | None = None
    send_result: dict[str, Any] | None = None
    channel: str = "work"  # "work" | "robot"
    robot: str | None = None
    notification_id: int | None = None
    status: str = "firing"
    superseded_by: int | None = None
    call_started_at: float | None = None

    @property
    def recipients(self) -> frozenset[str]:
        """Keys that order is kept by: each userid, and each department as `dept:N`."""
        return frozenset(self.userids) | {f"dept:{d}" for d in self.departments}

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Item:
        return cls(
            id=row["id"],
            state=row["state"],
            source=row["source"],
            receiver=row["receiver"],
            group_key=row["group_key"],
            msg=json.loads(row["msg"]),
            userids=split_ids(row["userids"]),
            departments=tuple(int(d) for d in split_ids(row["departments"])),
            attempts=row["attempts"],
            created_at=row["created_at"],
            next_attempt_at=row["next_attempt_at"],
            task_ids=tuple(json.loads(row["task_ids"] or "[]")),
            errcode=row["errcode"],
            last_error=row["last_error"],
            due_since=row["due_since"] or row["created_at"],
            owner=row["owner"],
            hold_reason=row["hold_reason"],
            sent_at=row["sent_at"],
            followup_at=row["followup_at"],
            send_result=json.loads(row["send_result"]) if row["send_result"] else None,
            channel=row["channel"] or "work",
            robot=row["robot"],
            notification_id=row["notification_id"],
            status=row["status"] or "firing",
            superseded_by=row["superseded_by"],
            call_started_at=row["call_started_at"],
        )


@dataclass(frozen=True)
class Pending:
    """An accepted webhook, as received, that the delivery process has not planned yet."""

    id: int
    received_at: float
    source: str
    receiver: str | None  # the receiver named in the URL; None: the route tree decides
    group_key: str
    body: bytes
    attempts: int = 0
    last_error: str | None = None


def split_ids(text: str) -> tuple[str, ...]:
    return tuple(u for u in text.split(",") if u)


def recipient_keys(userids: str, departments: str) -> set[str]:
    return set(split_ids(userids)) | {f"dept:{d}" for d in split_ids(departments)}


def pending_from_row(row: sqlite3.Row) -> Pending:
    return Pending(
        id=row["id"], received_at=row["received_at"], source=row["source"],
        receiver=row["receiver"], group_key=row["group_key"], body=bytes(row["body"]),
        attempts=row["attempts"], last_error=row["last_error"],
    )  # fmt: skip
