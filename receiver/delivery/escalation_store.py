"""The escalation records in the outbox database: notifications, who they reached, acks,
escalations and their steps. A step's items and its record commit in one transaction,
under a lease, as the outbox's items do: each step is sent once, across kill -9."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from receiver.delivery.escalation import ACTIVE, Escalation
from receiver.delivery.outbox_base import OutboxBase
from receiver.delivery.outbox_rows import split_ids
from receiver.delivery.pipeline import Entry
from receiver.delivery.status_bars import BAR_WINDOW_S, incident_since, queue_bars


@dataclass(frozen=True)
class NotificationRow:
    id: int
    received_at: float
    source: str
    group_key: str
    receivers: tuple[str, ...]
    status: str
    body: bytes


@dataclass(frozen=True)
class Reached:
    """One person (or `dept:N`) a notification or step reached."""

    userid: str
    receiver: str
    item_id: int
    step: int
    at: float
    item_state: str | None
    read_at: float | None
    acked_at: float | None


def _esc(row: sqlite3.Row) -> Escalation:
    return Escalation(
        id=row["id"], receiver=row["receiver"], group_key=row["group_key"],
        policy=row["policy"], state=row["state"], started_at=row["started_at"],
        step=row["step"], last_step_at=row["last_step_at"], due_at=row["due_at"],
        notification_id=row["notification_id"], ends_at=row["ends_at"],
    )  # fmt: skip


def record_notified(db: sqlite3.Connection, nid: int, group_key: str, entries: Sequence[Entry],
                    ids: Sequence[int], at: float, step: int = 0) -> None:  # fmt: skip
    for entry, item_id in zip(entries, ids, strict=True):
        who = list(entry.userids) + [f"dept:{d}" for d in entry.departments]
        for receiver in entry.receiver.split(","):
            db.executemany(
                "INSERT INTO notified (notification_id, receiver, userid, item_id,"
                " group_key, at, step) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                [(nid, receiver, u, item_id, group_key, at, step) for u in who],
            )


class EscalationQueries(OutboxBase):
    # -- planning: a notification and the escalations it starts, in expand's transaction ----
    @staticmethod
    def record_planned(
        db: sqlite3.Connection,
        *,
        nid: int,
        received_at: float,
        source: str,
        group_key: str,
        parts: dict[str, tuple[str, float | None]],
        starts: dict[str, tuple[str, float]],
        entries: Sequence[Entry],
        ids: Sequence[int],
        resolved_bar: tuple[str, str] = ("已恢复", "0xFF78C06E"),
        started_at: float | None = None,
    ) -> None:
        """`parts`: receiver -> (status, ends_at); `starts`: receiver -> (policy, first due);
        `started_at`: when an escalation it starts began (default: `received_at`)."""
        started = received_at if started_at is None else started_at
        status = "firing" if any(s == "firing" for s, _ in parts.values()) else "resolved"
        db.execute(
            "INSERT INTO planned (id, received_at, source, group_key, receivers, status)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET"  # either engine
            " received_at=excluded.received_at, source=excluded.source,"
            " group_key=excluded.group_key, receivers=excluded.receivers, status=excluded.status",
            (nid, received_at, source, group_key, ",".join(parts), status),
        )
        record_notified(db, nid, group_key, entries, ids, received_at)
        for receiver, (part_status, ends_at) in parts.items():
            if part_status == "resolved":
                since = incident_since(db, receiver, group_key, received_at - BAR_WINDOW_S)
                queue_bars(db, receiver, group_key, since, *resolved_bar, received_at)
                db.execute(
                    "UPDATE escalations SET state=CASE WHEN state=? THEN 'resolved' ELSE state END,"
                    " stopped_at=CASE WHEN state=? THEN ? ELSE stopped_at END, closed=1,"
                    " due_at=NULL"
                    " WHERE receiver=? AND group_key=? AND closed=0",
                    (ACTIVE, ACTIVE, received_at, receiver, group_key),
                )
                continue
            row = db.execute(
                "SELECT id, ends_at FROM escalations WHERE receiver=? AND group_key=? AND closed=0"
                " ORDER BY id DESC LIMIT 1",
                (receiver, group_key),
            ).fetchone()
            if row is not None and (row["ends_at"] is None or row["ends_at"] > received_at):
                # the same incident: its steps carry on, with the group's current state
                db.execute(
                    "UPDATE escalations SET notification_id=?, ends_at=? WHERE id=?",
                    (nid, ends_at, row["id"]),
                )
                continue
            if row is not None:
                db.execute("UPDATE escalations SET closed=1 WHERE id=?", (row["id"],))
            if receiver in starts:
                policy, due = starts[receiver]
                db.execute(
                    "INSERT INTO escalations (receiver, group_key, policy, state, started_at,"
                    " last_step_at, due_at, notification_id, ends_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (receiver, group_key, policy, ACTIVE, started, started, due, nid, ends_at),
                )  # fmt: skip

    # -- the runner ------------------------------------------------------------------------
    def next_escalation_due(self) -> float | None:
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(due_at) AS due FROM escalations WHERE state=?", (ACTIVE,)
            ).fetchone()
        return float(row["due"]) if row and row["due"] is not None else None

    def claim_escalations(self, *, now: float, owner: str, lease_s: float,
                          limit: int = 20) -> list[Escalation]:  # fmt: skip
        with self._read() as db:
            if not db.execute(
                "SELECT 1 FROM escalations WHERE state=? AND due_at<=? LIMIT 1", (ACTIVE, now)
            ).fetchone():
                return []
        skip = " FOR UPDATE SKIP LOCKED" if self.postgres else ""  # another replica's claim
        with self._tx() as db:
            rows = db.execute(
                "UPDATE escalations SET owner=?, lease_until=? WHERE id IN (SELECT id FROM"
                " escalations WHERE state=? AND due_at<=? AND (lease_until IS NULL OR"
                f" lease_until<?) ORDER BY due_at LIMIT ?{skip}) RETURNING *",
                (owner, now + lease_s, ACTIVE, now, now, limit),
            ).fetchall()
        return sorted((_esc(r) for r in rows), key=lambda e: (e.due_at or 0, e.id))

    def record_step(self, esc: Escalation, *, owner: str, step: int, at: float,
                    next_due: float | None, exhausted: bool, entries: Sequence[Entry],
                    source: str) -> list[int] | None:  # fmt: skip
        """The step and its items, in one transaction, if the lease is still ours; else None."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE escalations SET step=?, last_step_at=?, due_at=?, state=?,"
                " stopped_at=?, lease_until=NULL, owner=NULL"
                " WHERE id=? AND step=? AND state=? AND owner=?",
                (step, at, next_due, "exhausted" if exhausted else ACTIVE,
                 at if exhausted else None, esc.id, esc.step, ACTIVE, owner),
            )  # fmt: skip
            if cur.rowcount != 1:
                return None
            ids = self._insert(db, entries, source, esc.group_key, at)
            record_notified(db, esc.notification_id, esc.group_key, entries, ids, at, step)
        return ids

    def stop_escalation(self, esc_id: int, reason: str, *, at: float,
                        owner: str | None = None) -> bool:  # fmt: skip
        with self._tx() as db:
            cur = db.execute(
                "UPDATE escalations SET state=?, stopped_at=?, due_at=NULL, lease_until=NULL,"
                " owner=NULL, closed=CASE WHEN ?='resolved' THEN 1 ELSE closed END"
                " WHERE id=? AND state=? AND (? IS NULL OR owner=?)",
                (reason, at, reason, esc_id, ACTIVE, owner, owner),
            )
        return cur.rowcount == 1

    def escalation_owners(self) -> set[str]:
        with self._read() as db:
            rows = db.execute("SELECT DISTINCT owner FROM escalations WHERE owner IS NOT NULL")
            return {r["owner"] for r in rows.fetchall()}

    def release_escalation_owner(self, owner: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE escalations SET lease_until=NULL, owner=NULL WHERE owner=?", (owner,)
            )

    def release_escalation(self, esc_id: int, owner: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE escalations SET lease_until=NULL, owner=NULL WHERE id=? AND owner=?",
                (esc_id, owner),
            )

    # -- what the runner, the ack page and the CLI read -------------------------------------
    def planned_notification(self, nid: int) -> NotificationRow | None:
        with self._read() as db:
            r = db.execute(  # the body as received is kept once, in `notifications`
                "SELECT p.*, n.body FROM planned p JOIN notifications n ON n.id=p.id WHERE p.id=?",
                (nid,),
            ).fetchone()
        if r is None:
            return None
        return NotificationRow(
            r["id"], r["received_at"], r["source"], r["group_key"],
            split_ids(r["receivers"]), r["status"], bytes(r["body"]),
        )  # fmt: skip

    def escalation(self, esc_id: int) -> Escalation | None:
        with self._read() as db:
            r = db.execute("SELECT * FROM escalations WHERE id=?", (esc_id,)).fetchone()
        return _esc(r) if r is not None else None

    def escalations(self, *, active_only: bool = True) -> list[Escalation]:
        where = "WHERE state=?" if active_only else "WHERE ?<>''"
        with self._read() as db:
            rows = db.execute(f"SELECT * FROM escalations {where} ORDER BY id", (ACTIVE,))
            return [_esc(r) for r in rows.fetchall()]

    def acked(self, receiver: str, group_key: str, since: float) -> list[tuple[str, float]]:
        """(userid, at) of each ack of this receiver's group given on a notification received
        at or after `since` (the incident's start)."""
        with self._read() as db:
            rows = db.execute(  # an ack from an older incident's link does not count
                "SELECT a.userid, a.at FROM acks a JOIN planned p ON p.id=a.notification_id"
                " WHERE a.receiver=? AND a.group_key=? AND p.received_at>=? ORDER BY a.at",
                (receiver, group_key, since),
            ).fetchall()
        return [(r["userid"], r["at"]) for r in rows]

    def reached(self, receiver: str, group_key: str, since: float) -> list[Reached]:
        """Everyone this receiver's group reached since `since`, in order, with their state."""
        with self._read() as db:
            rows = db.execute(
                "SELECT n.userid, n.receiver, n.item_id, n.step, n.at, n.read_at, o.state,"
                " (SELECT MIN(a.at) FROM acks a WHERE a.receiver=n.receiver AND"
                "  a.group_key=n.group_key AND a.userid=n.userid AND a.at>=?) AS acked_at"
                " FROM notified n LEFT JOIN outbox o ON o.id=n.item_id"
                " WHERE n.receiver=? AND n.group_key=? AND n.at>=? ORDER BY n.at, n.item_id",
                (since, receiver, group_key, since),
            ).fetchall()
        return [Reached(r["userid"], r["receiver"], r["item_id"], r["step"], r["at"],
                        r["state"], r["read_at"], r["acked_at"]) for r in rows]  # fmt: skip

    def reached_by(self, nid: int) -> list[Reached]:
        """Everyone one notification (and the steps that re-sent it) reached."""
        with self._read() as db:
            rows = db.execute(
                "SELECT n.userid, n.receiver, n.item_id, n.step, n.at, n.read_at, o.state,"
                " (SELECT MIN(a.at) FROM acks a WHERE a.receiver=n.receiver AND"
                "  a.group_key=n.group_key AND a.userid=n.userid) AS acked_at"
                " FROM notified n LEFT JOIN outbox o ON o.id=n.item_id"
                " WHERE n.notification_id=? ORDER BY n.at, n.item_id",
                (nid,),
            ).fetchall()
        return [Reached(r["userid"], r["receiver"], r["item_id"], r["step"], r["at"],
                        r["state"], r["read_at"], r["acked_at"]) for r in rows]  # fmt: skip

    def reached_by_item(self, item_id: int) -> list[Reached]:
        with self._read() as db:
            row = db.execute(
                "SELECT notification_id FROM notified WHERE item_id=? LIMIT 1", (item_id,)
            ).fetchone()
        if row is None:
            return []
        return [r for r in self.reached_by(row["notification_id"]) if r.item_id == item_id]

    def task_ids_of(self, item_ids: Iterable[int]) -> dict[int, list[int]]:
        """item id -> the DingTalk task ids of its sends."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        with self._read() as db:
            rows = db.execute(
                f"SELECT id, task_ids FROM outbox WHERE id IN ({','.join('?' * len(ids))})", ids
            ).fetchall()
        return {r["id"]: list(json.loads(r["task_ids"] or "[]")) for r in rows}

    def record_reads(self, item_id: int, userids: Iterable[str], at: float) -> list[float]:
        """Note who DingTalk says has read item `item_id`, seen at `at`. Returns, for each
        person newly seen, when the item reached them (for the time-to-read histogram)."""
        users = list(dict.fromkeys(userids))
        if not users:
            return []
        reached: list[float] = []
        with self._tx() as db:
            for u in users:
                rows = db.execute(
                    "UPDATE notified SET read_at=? WHERE item_id=? AND userid=? AND read_at IS NULL"
                    " RETURNING at",
                    (at, item_id, u),
                ).fetchall()
                reached += [float(r["at"]) for r in rows[:1]]
        return reached
