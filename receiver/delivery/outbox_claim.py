"""Claiming items: planned in a read, taken in a short write that checks the plan still holds.

The plan (which items may go now, which a newer one replaces: receiver.delivery.order)
reads every unfinished item, which takes milliseconds; inside the write transaction it
held SQLite's one write lock, and the web workers' accepts queued behind it. So:

    read (WAL: no lock) ── plan ── snapshot of the groups it touches
    write (BEGIN IMMEDIATE) ── same snapshot? ── yes: mark the replaced, lease the chosen
                                              └─ no: plan again (CLAIM_TRIES times, then
                                                 once inside the write, as it used to be)

Whether an item may go depends only on the unfinished items of its own (receiver, group)
up to its id: an earlier one that shares a person blocks it, a newer one may replace it.
The snapshot is exactly those rows (state, due time, lease, hold, recipients), for every
group the plan claims from or supersedes in, up to the highest id it used. A console
requeue, a lifted hold, another replica's claim or a release changes it, and the plan is
dropped. Items queued after the plan have higher ids and are not in it: they cannot
block it (they may replace a chosen item, and then go after it, in order).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from receiver.delivery import order
from receiver.delivery.outbox_base import OutboxBase
from receiver.delivery.outbox_rows import Item, recipient_keys
from receiver.delivery.outbox_schema import DUE, UNFINISHED

COLUMNS = (
    "id, state, next_attempt_at, lease_until, hold_reason, receiver, group_key,"
    " status, userids, departments"
)


@dataclass(frozen=True)
class ClaimPlan:
    """A claim planned in a read: what to take, and what it was planned from."""

    chosen: list[int]
    superseded: dict[int, int]
    groups: frozenset[tuple[str, str]]  # (receiver, group_key) of every row it touches
    upto: int  # the highest id it relies on
    seen: frozenset[tuple[Any, ...]]  # those groups' unfinished rows up to `upto`


class ClaimQueries(OutboxBase):
    CLAIM_TRIES = 3  # plans made in a read before one is made inside the write lock

    def claim(
        self,
        *,
        limit: int = 10,
        lease_s: float = 60.0,
        owner: str = "",
        now: float | None = None,
        avoid: int | None = None,
    ) -> list[Item]:
        """Lease due items, oldest first, without letting one overtake an earlier one.

        An unfinished item blocks later items of its receiver and group that share a
        recipient, unless it is held for a client-side limit (receiver.delivery.order).
        `avoid`: an item to claim only when nothing else is due (the probe of a pause
        tries another message than the one that failed).
        """
        now = time.time() if now is None else now
        for attempt in range(self.CLAIM_TRIES):
            with self._read() as db:
                if attempt == 0 and not _any_due(db, now):  # most polls find nothing
                    return []
                p = self._plan_claim(db, now, limit, avoid)
            if p is None:
                return []
            taken = self.take(p, lease_s=lease_s, owner=owner, now=now)
            if taken is not None:
                return taken
        with self._tx() as db:  # it kept changing under us: plan holding the lock
            self._serialize(db, "claim")
            p = self._plan_claim(db, now, limit, avoid) if _any_due(db, now) else None
            return [] if p is None else self._take(db, p, lease_s, owner, now)

    def plan_claim(
        self, *, now: float | None = None, limit: int = 10, avoid: int | None = None
    ) -> ClaimPlan | None:
        """Plan a claim in a read transaction; None if there is nothing to take or mark."""
        with self._read() as db:
            return self._plan_claim(db, time.time() if now is None else now, limit, avoid)

    def take(
        self, p: ClaimPlan, *, lease_s: float = 60.0, owner: str = "", now: float | None = None
    ) -> list[Item] | None:
        """Carry out a plan in one short write; None if what it was planned from changed."""
        now = time.time() if now is None else now
        with self._tx() as db:
            self._serialize(db, "claim")  # replicas claim in turn: order per recipient holds
            if _snapshot(db, p.groups, p.upto) != p.seen:
                return None
            return self._take(db, p, lease_s, owner, now)

    def _take(
        self, db: sqlite3.Connection, p: ClaimPlan, lease_s: float, owner: str, now: float
    ) -> list[Item]:
        for old, new in p.superseded.items():
            db.execute(
                "UPDATE outbox SET state='superseded', superseded_by=?, updated_at=?,"
                " lease_until=NULL, owner=NULL WHERE id=? AND state IN ('queued','retry')",
                (new, now, old),
            )
            self._log(db, old, "superseded", error=f"by #{new}")
        if not p.chosen:
            return []
        marks = ",".join("?" * len(p.chosen))
        # A row another transaction is changing (a requeue, say) is left for the next poll;
        # one claimed since (leased into the future) is never taken twice.
        skip = " FOR UPDATE SKIP LOCKED" if self.postgres else ""
        # SQLite: `+state` keeps its planner off the state index (an OR over every waiting
        # row, 0.8 ms at 2,000 waiting): the ids are looked up by rowid.
        st = "state" if self.postgres else "+state"
        rows = db.execute(
            "UPDATE outbox SET state='sending', owner=?, lease_until=?, updated_at=?,"
            f" hold_reason=NULL WHERE id IN (SELECT id FROM outbox WHERE id IN ({marks}){skip})"
            f" AND ({st} IN ('queued','retry') OR ({st}='sending' AND lease_until<?))"
            " RETURNING *",
            (owner, now + lease_s, now, *p.chosen, now),
        ).fetchall()
        return sorted((Item.from_row(r) for r in rows), key=lambda i: i.id)

    def _plan_claim(
        self, db: sqlite3.Connection, now: float, limit: int, avoid: int | None
    ) -> ClaimPlan | None:
        p = self._plan(db, now, limit + (avoid is not None))
        others = [i for i in p.chosen if i != avoid]
        chosen = (others or p.chosen)[:limit]
        if not chosen and not p.superseded:
            return None
        used = {*chosen, *p.superseded, *p.superseded.values()}
        marks = ",".join("?" * len(used))
        groups = frozenset(
            (r["receiver"], r["group_key"])
            for r in db.execute(
                f"SELECT receiver, group_key FROM outbox WHERE id IN ({marks})", tuple(used)
            )  # fmt: skip
        )
        upto = max(used)
        return ClaimPlan(chosen, p.superseded, groups, upto, _snapshot(db, groups, upto))

    def _plan(
        self, db: sqlite3.Connection, now: float, limit: int, explain: bool = False
    ) -> order.Plan:
        """The scan in id order, which stops at `limit` unless `explain` (for `outbox list`).

        Supersessions are found per group, from that group's unfinished rows (an index
        read), the first time the scan meets one of its rows: every row the scan looks at
        is judged as if all were found beforehand, and a group past where the scan stops
        is not read at all (its replaced items are marked by a later claim). Finding
        them all first grouped every waiting row of the backlog on every claim.
        """

        def fired(receiver: str, group_key: str) -> bool:
            return bool(db.execute(
                "SELECT 1 FROM outbox WHERE group_key=? AND receiver=?"
                " AND state IN ('sent','dry_run') AND COALESCE(status,'firing')='firing' LIMIT 1",
                (group_key, receiver),
            ).fetchone())  # fmt: skip

        superseded: dict[int, int] = {}
        met: set[tuple[str, str]] = set()
        # SQLite, without ANALYZE's statistics, would read the backlog by state and sort it
        # (0.7 ms at 1,000 waiting items); the index reads it in order, as far as needed.
        walk = "" if self.postgres else " INDEXED BY outbox_unfinished_id"

        def scan() -> Iterator[order.Row]:
            # A page at a time: the scan mostly stops after `limit` items, and PostgreSQL's
            # client would otherwise fetch the whole backlog on every claim.
            sql = (f"SELECT {COLUMNS} FROM outbox{walk} WHERE {UNFINISHED} AND id>?"
                   " ORDER BY id LIMIT ?")  # fmt: skip
            after, page = 0, max(4 * limit, 50)
            while True:
                rows = db.execute(sql, (after, page)).fetchall()
                for raw in rows:
                    r = _row(raw)
                    if r.group not in met:
                        met.add(r.group)
                        superseded.update(order.supersessions(_group(db, r.group), fired))
                    yield r
                if len(rows) < page:
                    return
                after = rows[-1]["id"]

        return order.plan(scan(), now, limit, fired, superseded=superseded, explain=explain)

    def next_send_due(self) -> float | None:
        """When the send loop next has work without being woken: the earliest queued or
        retrying item, lease to run out, follow-up, deferred plan or pause probe (which
        may be due already); None when there is none."""
        with self._read() as db:
            row = db.execute(
                "SELECT (SELECT MIN(next_attempt_at) FROM outbox WHERE state='queued'),"
                " (SELECT MIN(next_attempt_at) FROM outbox WHERE state='retry'),"
                " (SELECT MIN(lease_until) FROM outbox WHERE state='sending'),"
                " (SELECT MIN(followup_at) FROM outbox WHERE followup_at IS NOT NULL),"
                " (SELECT MIN(next_attempt_at) FROM pending),"
                " (SELECT MIN(probe_at) FROM pause)"
            ).fetchone()
        return min((float(v) for v in tuple(row) if v is not None), default=None)

    def waiting_behind(self, now: float | None = None) -> dict[int, int]:
        """For `outbox list`: each waiting item, and the earlier item it waits for."""
        with self._read() as db:
            return self._plan(db, time.time() if now is None else now, 0, explain=True).behind


def _any_due(db: sqlite3.Connection, now: float) -> bool:
    return bool(db.execute(f"SELECT 1 FROM outbox WHERE {DUE} LIMIT 1", {"now": now}).fetchone())


def _snapshot(
    db: sqlite3.Connection, groups: frozenset[tuple[str, str]], upto: int
) -> frozenset[tuple[Any, ...]]:
    """The unfinished rows of these groups up to `upto`: what a plan for them rests on."""
    return frozenset(_rows(db, groups, upto))


def _rows(
    db: sqlite3.Connection, groups: frozenset[tuple[str, str]], upto: int
) -> Iterator[tuple[Any, ...]]:
    for receiver, group_key in groups:
        yield from (
            tuple(r)
            for r in db.execute(
                f"SELECT {COLUMNS} FROM outbox WHERE group_key=? AND receiver=?"
                f" AND {UNFINISHED} AND id<=?",
                (group_key, receiver, upto),
            )
        )


def _group(db: sqlite3.Connection, group: tuple[str, str]) -> list[order.Row]:
    """A group's unfinished rows (the sending ones are not replaceable; asked for to use
    the index outbox_unfinished)."""
    return [
        _row(r)
        for r in db.execute(
            f"SELECT {COLUMNS} FROM outbox WHERE group_key=? AND receiver=? AND {UNFINISHED}",
            (group[1], group[0]),
        )
    ]


def _row(r: sqlite3.Row) -> order.Row:
    return order.Row(
        r["id"], r["state"], r["next_attempt_at"], r["lease_until"], r["hold_reason"],
        r["receiver"], r["group_key"], r["status"] or "firing",
        frozenset(recipient_keys(r["userids"], r["departments"])),
    )  # fmt: skip
