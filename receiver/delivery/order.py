"""Which items may go now, which are replaced, and why the others wait. Pure.

Order is kept per (receiver, alert group, person): an item is not claimed while an
earlier unfinished item of the same receiver and group for one of its recipients
is queued, retrying or being sent. Items of other groups never wait for it, even
to the same person, so one message that keeps failing holds up only its own group.

Alertmanager sends a group's whole state each time, so when two items of one
group to the same people both still wait, only the newer one goes out: the older
becomes `superseded`, pointing at it. One exception keeps a resolved notification
from arriving alone: it replaces a firing one only once a firing notification of
that group has been delivered (`fired`); otherwise both go, firing first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

WAITING = ("queued", "retry")


@dataclass(frozen=True)
class Row:
    """The columns a claim reads of an unfinished item."""

    id: int
    state: str  # queued | retry | sending
    next_attempt_at: float
    lease_until: float | None
    hold_reason: str | None
    receiver: str
    group_key: str
    status: str  # firing | resolved
    recipients: frozenset[str]

    @property
    def group(self) -> tuple[str, str]:
        return (self.receiver, self.group_key)

    def keys(self) -> set[tuple[str, str, str]]:
        return {(self.receiver, self.group_key, r) for r in self.recipients}

    def due(self, now: float) -> bool:
        if self.state == "sending":
            return (self.lease_until or 0) < now  # its claimer's lease ran out
        return self.next_attempt_at <= now

    @property
    def replaceable(self) -> bool:
        # An item with no recipients (a group robot's copy) is never replaced, nor replaces.
        return self.state in WAITING and self.hold_reason is None and bool(self.recipients)


@dataclass
class Plan:
    chosen: list[int] = field(default_factory=list)  # claim these, in this order
    superseded: dict[int, int] = field(default_factory=dict)  # older id -> the newer one
    behind: dict[int, int] = field(default_factory=dict)  # waiting id -> the item it waits for


def supersessions(rows: list[Row], fired: Callable[[str, str], bool]) -> dict[int, int]:
    """Older waiting items that a newer waiting item of the same group and people replaces."""
    by_group: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if r.replaceable:
            by_group.setdefault(r.group, []).append(r)
    out: dict[int, int] = {}
    for group, members in by_group.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda r: r.id)
        for i, old in enumerate(members):
            for new in reversed(members[i + 1 :]):
                if not old.recipients <= new.recipients:
                    continue
                if new.status == "resolved" and old.status != "resolved" and not fired(*group):
                    continue  # the resolved one would arrive alone: send both, in order
                out[old.id] = new.id
                break
    return out


def plan(rows: Iterable[Row], now: float, limit: int, fired: Callable[[str, str], bool], *,
         superseded: dict[int, int] | None = None, explain: bool = True) -> Plan:  # fmt: skip
    """Rows are every unfinished item (queued, retry, sending) in id order.

    `superseded`: supersessions found by the caller (the outbox adds a group's to it as
    `rows` reaches the group's first row, so the dict may grow while it is read);
    None: found here, from `rows`. Without `explain`,
    the scan stops once `limit` items are chosen, and `behind` is partial.
    """
    if superseded is None:
        rows = list(rows)
        superseded = supersessions(rows, fired)
    result = Plan(superseded=superseded)
    blocked: dict[tuple[str, str, str], int] = {}  # key -> the earliest item holding it
    for r in rows:
        if r.id in result.superseded:
            continue
        keys = r.keys()
        ahead = [blocked[k] for k in keys if k in blocked]
        due = r.due(now)
        if ahead:
            result.behind[r.id] = min(ahead)
        elif due and len(result.chosen) < limit:
            result.chosen.append(r.id)
            if len(result.chosen) >= limit and not explain:
                break
        # A held item (a client-side limit) waits for its day without holding others back.
        if due or r.hold_reason is None:
            for k in keys:
                blocked.setdefault(k, r.id)
    return result
