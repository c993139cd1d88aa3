"""From one accepted Notification to the outbox entries it produces. Pure.

ingest -> routing (per alert) -> render (per receiver) -> recipients de-duplicated
per distinct message -> entries of at most 100 userids and 20 departments each.
A receiver with `robots:` also gets one entry per (robot, distinct message): the
group robot's copy, @mentioning the userids that receiver paged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from receiver.messages.acklinks import AckLinks
from receiver.messages.render import Renderer
from receiver.messages.robot import robot_copy
from receiver.model import Alert, Notification, Status
from receiver.routing.robots import Robot
from receiver.routing.table import Receiver, RoutingTable

MAX_USERIDS_PER_CALL = 100
MAX_DEPTS_PER_CALL = 20


@dataclass(frozen=True)
class Entry:
    """One DingTalk call's worth of work: a rendered msg and at most 100 userids."""

    receiver: str
    msg: dict[str, Any]
    userids: tuple[str, ...]
    departments: tuple[int, ...] = ()
    robot: str | None = None  # a group robot's copy: `msg` is its body, with its mentions
    status: str = "firing"  # the group's status for this receiver: firing | resolved
    text: str = ""  # `msg` as compact JSON, when the render made it; else made to store it


def split_by_receiver(
    table: RoutingTable, n: Notification, now: datetime, receiver: str | None = None
) -> dict[str, Notification]:
    """Route each alert; give each receiver the part of the group that reaches it."""
    by_receiver: dict[str, list[Alert]] = {}
    for alert in n.alerts:
        names = [receiver] if receiver else table.match(alert.labels, now)
        for name in names:
            by_receiver.setdefault(name, []).append(alert)
    parts: dict[str, Notification] = {}
    for name, alerts in by_receiver.items():
        if not table.receivers[name].send_resolved:
            alerts = [a for a in alerts if a.status == "firing"]
        if not alerts:
            continue
        status: Status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
        whole = (  # the group as it came
            status == n.status and len(alerts) == len(n.alerts)
            and all(a is b for a, b in zip(alerts, n.alerts, strict=True))
        )  # fmt: skip
        parts[name] = n if whole else replace(n, alerts=tuple(alerts), status=status)
    return parts


def plan(
    table: RoutingTable,
    renderer: Renderer,
    n: Notification,
    *,
    now: datetime | None = None,
    receiver: str | None = None,
    ack: AckLinks | None = None,
    parts: dict[str, Notification] | None = None,
) -> list[Entry]:
    """The entries for `n`. With `ack`, each person's firing message carries their own
    acknowledge link, so it is one entry per person (departments get it without one).
    `parts`: `split_by_receiver` of the same arguments, when the caller has it already."""
    now = now or datetime.now(UTC)
    if parts is None:
        parts = split_by_receiver(table, n, now, receiver)
    everyone = {name: table.recipients(name, now) for name in parts}
    stand_in = ""
    if ack is not None:
        stand_in = ack.placeholder([u for rc in everyone.values() for u in rc.userids])
    # One group per distinct message: receivers whose messages are identical share
    # their recipients (each person once), and are cut into calls only at the end,
    # so a storm makes the fewest calls possible: one per message per 100 people.
    groups: dict[str, _Group] = {}
    copies: dict[tuple[str, str], _Copy] = {}
    for name, part in parts.items():
        r = table.receivers[name]
        recipients = everyone[name]
        linked = stand_in if part.status == "firing" else ""
        message = renderer.render(
            part, template=r.template, msgtype=r.msgtype, now=now, ack_url=linked or None
        )
        # One receiver (the usual case) has nothing to share its message with.
        key = json.dumps(message.msg, sort_keys=True, ensure_ascii=False) if len(parts) > 1 else ""
        group = groups.setdefault(key, _Group(message.msg, part.status, text=message.text))
        if linked and recipients.departments and group.plain is None:
            group.plain = renderer.render(part, template=r.template, msgtype=r.msgtype, now=now).msg
        group.receivers.setdefault(name, None)
        group.userids.update(dict.fromkeys(recipients.userids))
        group.departments.update(dict.fromkeys(recipients.departments))
        for robot in r.robots:
            kind = table.robots[robot].msgtype
            bare = robot_copy(renderer, part, template=r.template, msgtype=kind, mentions=(),
                              now=now)  # fmt: skip
            copy = copies.setdefault((robot, json.dumps(bare, sort_keys=True)), _Copy(part))
            copy.receivers.setdefault(name, None)
            copy.template, copy.msgtype = r.template, kind
            copy.userids.update(dict.fromkeys(recipients.userids))
    entries = [e for g in groups.values() for e in g.entries(ack, stand_in)]
    for (robot, _), c in copies.items():  # each robot's copy, mentioning everyone it paged
        body = robot_copy(renderer, c.part, template=c.template, msgtype=c.msgtype,
                          mentions=tuple(c.userids), now=now)  # fmt: skip
        entries.append(Entry(receiver=",".join(c.receivers), msg=body, userids=(), robot=robot,
                             status=c.part.status))  # fmt: skip
    return entries


@dataclass
class _Copy:
    part: Notification
    template: str | None = None
    msgtype: str = "markdown"
    receivers: dict[str, None] = field(default_factory=dict)  # ordered sets
    userids: dict[str, None] = field(default_factory=dict)


def preview(
    table: RoutingTable,
    renderer: Renderer,
    n: Notification,
    *,
    now: datetime,
    receiver: str | None = None,
    template: str | None = None,
    msgtype: str | None = None,
) -> list[Entry]:
    """What `render` and the console's template preview show for a payload.

    With `template` or `msgtype` (and no `receiver`) the payload is rendered directly,
    as receiver "-" with no recipients; otherwise it is planned like a real webhook.
    """
    if (template or msgtype) and not receiver:
        m = renderer.render(n, template=template, msgtype=msgtype or "markdown", now=now)
        return [Entry("-", m.msg, ())]
    if receiver and receiver not in table.receivers:
        raise KeyError(f"no receiver {receiver!r} in {table.path}")
    return plan(table, renderer, n, now=now, receiver=receiver)


@dataclass
class _Group:
    msg: dict[str, Any]
    status: str
    receivers: dict[str, None] = field(default_factory=dict)  # ordered sets
    userids: dict[str, None] = field(default_factory=dict)
    departments: dict[int, None] = field(default_factory=dict)
    plain: dict[str, Any] | None = None  # the message without an acknowledge link
    text: str = ""  # `msg` as compact JSON, when the render made it

    def entries(self, ack: AckLinks | None = None, stand_in: str = "") -> list[Entry]:
        name = ",".join(self.receivers)
        text = json.dumps(self.msg, ensure_ascii=False) if ack is not None and stand_in else ""
        status, depts = self.status, list(self.departments)
        if ack is None or not text or stand_in not in text:
            return _chunks(name, self.msg, list(self.userids), depts, status, self.text)
        return [
            Entry(name, json.loads(ack.personal(text, stand_in, u)), (u,), status=status)
            for u in self.userids
        ] + _chunks(name, self.plain or self.msg, [], depts, status,
                    "" if self.plain else self.text)  # fmt: skip


def _chunks(
    name: str, msg: dict[str, Any], userids: list[str], depts: list[int], status: str,
    text: str = "",
) -> list[Entry]:  # fmt: skip
    out: list[Entry] = []
    u_chunks = [
        userids[i : i + MAX_USERIDS_PER_CALL] for i in range(0, len(userids), MAX_USERIDS_PER_CALL)
    ]
    d_chunks = [depts[i : i + MAX_DEPTS_PER_CALL] for i in range(0, len(depts), MAX_DEPTS_PER_CALL)]
    for i in range(max(len(u_chunks), len(d_chunks))):
        u = u_chunks[i] if i < len(u_chunks) else []
        d = d_chunks[i] if i < len(d_chunks) else []
        out.append(Entry(name, msg, tuple(u), tuple(d), status=status, text=text))
    return out


def step_entries(
    renderer: Renderer,
    part: Notification,
    receiver: Receiver,
    userids: list[str],
    departments: list[int],
    *,
    now: datetime,
    ack: AckLinks | None,
    note: str,
    robots: Mapping[str, Robot] | None = None,
) -> list[Entry]:
    """An escalation step's entries: the group's current state, with `note` on top, and
    a copy to each of the receiver's group robots that @mentions the newly paged people."""
    stand_in = ack.placeholder(userids) if ack is not None and userids else ""
    r = receiver
    message = renderer.render(
        part, template=r.template, msgtype=r.msgtype, now=now, ack_url=stand_in or None, note=note
    )
    group = _Group(
        message.msg, part.status, {r.name: None}, dict.fromkeys(userids),
        dict.fromkeys(departments), text=message.text,
    )  # fmt: skip
    if stand_in and departments:
        group.plain = renderer.render(
            part, template=r.template, msgtype=r.msgtype, now=now, note=note
        ).msg
    entries = group.entries(ack, stand_in)
    for name in r.robots if userids else ():
        if robots is None or name not in robots:
            continue
        kind = robots[name].msgtype
        body = robot_copy(renderer, part, template=r.template, msgtype=kind,
                          mentions=tuple(userids), now=now, note=note)  # fmt: skip
        entries.append(Entry(receiver=r.name, msg=body, userids=(), robot=name,
                             status=part.status))  # fmt: skip
    return entries
