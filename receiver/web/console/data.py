"""What the console pages show, gathered from the state every worker already holds.

Each function answers one page's question from the owning module's own queries
(outbox queries, the pause, the per-person records, the routing table, the
directory), so the console and the CLI give one answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from receiver.delivery.outbox import Item
from receiver.delivery.planner import PARSERS
from receiver.delivery.state import State
from receiver.directory.store import DirectoryStore
from receiver.errors import PayloadError
from receiver.model import Alert
from receiver.routing.table import RoutingTable

FILTER_STATES = ("pending", "queued", "held", "sending", "retry", "dead", "sent", "dry_run")


def names(state: State, userids: Iterable[str]) -> dict[str, str]:
    """userid -> name from the synced directory ("" when unknown or not synced)."""
    d = state.directory
    if not isinstance(d, DirectoryStore):
        return {}
    return {u.userid: u.name for u in d.users(userids)}


def ago(seconds: float | None) -> str:
    """A short age: 42s, 5m, 3h 20m, 2d 4h."""
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def paused(state: State) -> str | None:
    """Why sending is paused (docs/delivery.md, "The pause"), or None while it runs."""
    pause = state.outbox.pause_state()
    if pause is None:
        return None
    since = datetime.fromtimestamp(pause.since, UTC).isoformat(timespec="seconds")
    return (
        f"{pause.reason} since {since} ({pause.failures} failed calls; next probe in"
        f" {ago(pause.probe_at - time.time())}): {pause.error}"
    )


@dataclass(frozen=True)
class OnCallNow:
    schedule: str
    user: str
    userids: tuple[str, ...]
    until: datetime | None
    override: bool


def on_call_now(state: State, now: datetime) -> list[OnCallNow]:
    table = state.table
    out = []
    for name in sorted(table.schedules):
        s = table.schedules[name]
        shift = s.shift_at(now)
        override = s.rotation_user(now) != shift.user
        out.append(
            OnCallNow(name, shift.user, tuple(table.resolve(shift.user)), shift.end, override)
        )
    return out


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]
    oldest_age: float | None
    paused: str | None
    errors: list[dict[str, Any]]
    on_call: list[OnCallNow]
    routing: str
    loaded_at: datetime
    reload_error: tuple[datetime, tuple[str, ...]] | None


def overview(state: State, now: datetime) -> Overview:
    counts, oldest = state.outbox.stats()
    errors = state.outbox.recent_errors(10)
    return Overview(
        counts=counts,
        oldest_age=None if oldest is None else now.timestamp() - oldest,
        paused=paused(state),
        errors=errors,
        on_call=on_call_now(state, now),
        routing=state.table.path,
        loaded_at=state.loaded_at,
        reload_error=state.reload_error,
    )


def alerts_of(state: State, notification_id: int | None) -> list[Alert] | None:
    """The alerts of a planned webhook as received, firing first; None once it is not kept."""
    stored = state.outbox.notification(notification_id) if notification_id is not None else None
    if stored is None:
        return None
    try:
        n = PARSERS[stored.source](stored.body)
    except (PayloadError, KeyError):
        return None
    return sorted(n.alerts, key=lambda a: a.status != "firing")  # as the message orders them


@dataclass(frozen=True)
class RecipientState:
    userid: str
    name: str
    sent: str  # "sent", "queued", "failed", "invalid", "forbidden" …
    read: str = "-"  # when DingTalk said they read it (getsendresult), or "read"
    acknowledged: str = "-"  # when they acknowledged the group


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def recipients(state: State, item: Item) -> list[RecipientState]:
    """Each recipient's state: the item, DingTalk's send result, and the read and
    acknowledged times recorded per person (the same as `outbox show`)."""
    result = item.send_result or {}
    by_user = names(state, item.userids)
    reached = {r.userid: r for r in state.outbox.reached_by_item(item.id)}
    out = []
    for u in item.userids:
        sent = "sent" if item.state == "sent" else item.state
        for kind in ("invalid", "forbidden", "failed"):
            if u in (result.get(kind) or []):
                sent = kind
        person = reached.get(u)
        read = _when(person.read_at) if person and person.read_at else "-"
        if read == "-" and u in (result.get("read") or []):
            read = "read"
        acked = _when(person.acked_at) if person else "-"
        out.append(RecipientState(u, by_user.get(u, ""), sent, read, acked))
    return out


@dataclass(frozen=True)
class Row:
    """One line of the notifications list: an item, or a pending webhook (id `pN`)."""

    ref: str
    state: str
    receiver: str
    who: str
    attempts: int
    age: str
    error: str
    at: float


def rows(state: State, want: str | None, receiver: str, person: str, limit: int = 200) -> list[Row]:
    """Newest first, filtered by state, receiver and person (a userid or a directory name)."""
    now = time.time()
    userid = person
    if person and isinstance(state.directory, DirectoryStore):
        found = state.directory.find("name", person)
        userid = found[0] if found else person
    out: list[Row] = []
    if want in (None, "", "pending") and not person:
        for p in state.outbox.pending(limit):
            if receiver and (p.receiver or "") != receiver:
                continue
            age = ago(now - p.received_at)
            who = "(route tree)" if p.receiver is None else p.receiver
            out.append(Row(f"p{p.id}", "pending", who, "", p.attempts, age,
                           p.last_error or "", p.received_at))  # fmt: skip
    if want != "pending":
        items = state.outbox.find(want or None, receiver=receiver or None,
                                  userid=userid or None, limit=limit)  # fmt: skip
        for i in items:
            st = "held" if i.state == "queued" and i.hold_reason else i.state
            who = ",".join([*i.userids, *(f"dept:{d}" for d in i.departments)])
            who = f"robot:{i.robot}" if i.robot else who
            error = i.hold_reason or ("" if i.state == "sent" else (i.last_error or ""))
            out.append(Row(str(i.id), st, i.receiver, who, i.attempts, ago(now - i.created_at),
                           error, i.created_at))  # fmt: skip
    out.sort(key=lambda r: r.at, reverse=True)
    return out[:limit]


@dataclass(frozen=True)
class Day:
    date: str
    shifts: list[tuple[str, str, str, bool]] = field(default_factory=list)  # from, to, who, over


def calendar(table: RoutingTable, schedule: str, now: datetime, days: int = 14) -> list[Day]:
    """Each of the next `days` days (in the schedule's zone) with its shifts; overrides marked."""
    s = table.schedules[schedule]
    local = now.astimezone(s.tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for d in range(days):
        day_start = (start + timedelta(days=d)).astimezone(UTC)
        day_end = (start + timedelta(days=d + 1)).astimezone(UTC)
        t = day_start
        day = Day((start + timedelta(days=d)).strftime("%Y-%m-%d %a"))
        while t < day_end:
            shift = s.shift_at(t)
            end = min(shift.end or day_end, day_end)
            over = s.rotation_user(t) != shift.user
            day.shifts.append((_hm(t, s.tz), _hm(end, s.tz, end == day_end), shift.user, over))
            t = end
        out.append(day)
    return out


def _hm(t: datetime, tz: Any, midnight: bool = False) -> str:
    return "24:00" if midnight else t.astimezone(tz).strftime("%H:%M")
