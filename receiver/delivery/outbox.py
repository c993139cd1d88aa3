"""The outbox: SQLite (WAL) in RECEIVER_DATA_DIR, the only copy of an accepted alert.

    webhook ──accept──► pending ──plan (delivery process)──► queued items
    queued ──claim──► sending ──► sent ──(follow-up, then retention)──► purged
       ▲                 │ └────► retry ──(due)──► sending …
       └──(lease expired, released, held to tomorrow)  └──► dead (permanent, or too old)

A web worker commits the webhook's body as a `pending` row (BEGIN IMMEDIATE,
synchronous=FULL) before it answers 2xx. The delivery process routes and renders
it, and replaces it with its items in one transaction (`expand`): it becomes
items once, or stays pending. Each later transition is its own transaction.
A claim carries an owner and a lease; an item whose claimer died goes back to the
queue when its lease runs out (or at once, when the claimer is known to be dead).
Claims keep per-recipient order: an item is not claimed while an earlier item that
shares a recipient is unfinished, unless both are in the same claim.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from receiver.delivery.pipeline import Entry
from receiver.errors import OutboxUnavailable
from receiver.storage.sqlite import ThreadConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'retry', 'dead')),
    source TEXT NOT NULL,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    msg TEXT NOT NULL,
    userids TEXT NOT NULL,
    departments TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    task_ids TEXT,
    errcode INTEGER,
    last_error TEXT,
    sent_at REAL
);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    receiver TEXT,
    group_key TEXT NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES outbox (id),
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    errcode INTEGER,
    error TEXT
);
"""
# Columns added after the first schema; an older file gets them by ALTER TABLE.
COLUMNS = {
    "owner": "TEXT",  # who holds the lease: host:pid:start
    "due_since": "REAL",  # when the item first became due; the give-up age counts from here
    "hold_reason": "TEXT",  # set while held for a client-side limit (does not block order)
    "followup_at": "REAL",  # when getsendresult is due
    "send_result": "TEXT",  # what getsendresult said (JSON)
}
INDEXES = """
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_followup ON outbox (followup_at) WHERE followup_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS attempts_item ON attempts (item_id);
"""

STATES = ("queued", "sending", "sent", "retry", "dead")
COUNTED = ("pending", *STATES)  # what counts() reports: accepted webhooks not yet planned too
_DUE = (
    "((state IN ('queued','retry') AND next_attempt_at<=:now)"
    " OR (state='sending' AND lease_until<:now))"
)


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
            userids=_split(row["userids"]),
            departments=tuple(int(d) for d in _split(row["departments"])),
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


def _split(text: str) -> tuple[str, ...]:
    return tuple(u for u in text.split(",") if u)


def _keys(userids: str, departments: str) -> set[str]:
    return set(_split(userids)) | {f"dept:{d}" for d in _split(departments)}


class Outbox:
    def __init__(
        self, data_dir: str, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL"
    ) -> None:
        """`synchronous`: FULL (the default) fsyncs every commit, as the accept path must.

        The delivery process uses NORMAL: a state change it loses to a power cut is
        redone (a lease runs out, the item is sent again: at-least-once, as documented),
        and each commit no longer holds the write lock through an fsync.
        """
        self.path = os.path.join(data_dir, "outbox.sqlite3")
        self._db = ThreadConnections(self.path, busy_timeout_ms, synchronous)
        try:
            os.makedirs(data_dir, exist_ok=True)
            with self._tx() as db:  # DDL is transactional: several workers may start at once
                for stmt in SCHEMA.split(";"):
                    db.execute(stmt)
                have = {r["name"] for r in db.execute("PRAGMA table_info(outbox)")}
                for name, decl in COLUMNS.items():
                    if name not in have:
                        db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {decl}")
                for stmt in INDEXES.split(";"):
                    db.execute(stmt)
        except (OSError, OutboxUnavailable, sqlite3.Error) as e:
            raise OutboxUnavailable(f"cannot open outbox {self.path}: {e}") from None

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction()

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read: it does not hold up the web workers' commits (WAL)."""
        return self._db.transaction(write=False)

    def _log(self, db: sqlite3.Connection, item_id: int, outcome: str, errcode: int | None = None,
             error: str | None = None) -> None:  # fmt: skip
        db.execute(
            "INSERT INTO attempts (item_id, at, outcome, errcode, error) VALUES (?,?,?,?,?)",
            (item_id, time.time(), outcome, errcode, error),
        )

    # -- accept path -----------------------------------------------------------------------
    def accept(self, body: bytes, *, source: str, receiver: str | None, group_key: str) -> Pending:
        """Commit a validated webhook body; it is on disk when this returns."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO pending (received_at, source, receiver, group_key, body,"
                " next_attempt_at) VALUES (?,?,?,?,?,?)",
                (now, source, receiver, group_key, body, now),
            )
        return Pending(int(cur.lastrowid or 0), now, source, receiver, group_key, body)

    def enqueue(self, entries: Iterable[Entry], *, source: str, group_key: str) -> list[int]:
        """Commit every entry, or none. Returns the new ids once they are on disk."""
        with self._tx() as db:
            return self._insert(db, entries, source, group_key, time.time())

    @staticmethod
    def _insert(db: sqlite3.Connection, entries: Iterable[Entry], source: str, group_key: str,
                created_at: float) -> list[int]:  # fmt: skip
        now = time.time()
        ids: list[int] = []
        for e in entries:
            cur = db.execute(
                "INSERT INTO outbox (created_at, updated_at, state, source, receiver,"
                " group_key, msg, userids, departments, next_attempt_at, due_since)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    created_at, now, "queued", source, e.receiver, group_key,
                    json.dumps(e.msg, ensure_ascii=False, separators=(",", ":")),
                    ",".join(e.userids), ",".join(str(d) for d in e.departments), now,
                    created_at,
                ),
            )  # fmt: skip
            ids.append(int(cur.lastrowid or 0))
        return ids

    # -- planning (delivery process) -------------------------------------------------------
    def due_pending(self, *, limit: int = 20, now: float | None = None) -> list[Pending]:
        """Pending webhooks to plan, oldest first."""
        now = time.time() if now is None else now
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM pending WHERE next_attempt_at<=? ORDER BY id LIMIT ?", (now, limit)
            ).fetchall()
        return [_pending(r) for r in rows]

    def pending(self, limit: int = 1000) -> list[Pending]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM pending ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [_pending(r) for r in rows]

    def expand(self, p: Pending, entries: Iterable[Entry]) -> list[int] | None:
        """Replace pending `p` with its items, in one transaction; None if already done."""
        with self._tx() as db:
            if db.execute("DELETE FROM pending WHERE id=?", (p.id,)).rowcount != 1:
                return None
            return self._insert(db, entries, p.source, p.group_key, p.received_at)

    def defer(self, pending_id: int, *, error: str, delay_s: float) -> None:
        """Planning failed: keep the webhook, note why, and plan it again after `delay_s`."""
        with self._tx() as db:
            db.execute(
                "UPDATE pending SET attempts=attempts+1, next_attempt_at=?, last_error=?"
                " WHERE id=?",
                (time.time() + delay_s, error, pending_id),
            )

    def replan(self, pending_id: int) -> bool:
        """Plan a pending webhook at the next poll, its backoff started afresh."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE pending SET attempts=0, next_attempt_at=? WHERE id=?",
                (time.time(), pending_id),
            )
        return cur.rowcount == 1

    def drop_pending(self, pending_id: int) -> Pending | None:
        """Delete a pending webhook an operator gave up on; what it was, or None."""
        with self._tx() as db:
            row = db.execute("DELETE FROM pending WHERE id=? RETURNING *", (pending_id,)).fetchone()
        return _pending(row) if row is not None else None

    # -- delivery path ---------------------------------------------------------------------
    def claim(
        self,
        *,
        limit: int = 10,
        lease_s: float = 60.0,
        owner: str = "",
        now: float | None = None,
    ) -> list[Item]:
        """Lease due items, oldest first, without letting one overtake an earlier one.

        An unfinished item blocks later items that share a recipient, unless it is
        held for a client-side limit or is claimed in this same batch (the worker
        handles a batch in id order and gives back what follows a failure).
        """
        now = time.time() if now is None else now
        with self._read() as db:  # most polls find nothing: look before taking the write lock
            if not db.execute(
                f"SELECT 1 FROM outbox WHERE {_DUE} LIMIT 1", {"now": now}
            ).fetchone():
                return []
        with self._tx() as db:
            chosen = self._pick(db, now, limit)
            if not chosen:
                return []
            marks = ",".join("?" * len(chosen))
            rows = db.execute(
                "UPDATE outbox SET state='sending', owner=?, lease_until=?, updated_at=?,"
                f" hold_reason=NULL WHERE id IN ({marks}) RETURNING *",
                (owner, now + lease_s, now, *chosen),
            ).fetchall()
        return sorted((Item.from_row(r) for r in rows), key=lambda i: i.id)

    @staticmethod
    def _pick(db: sqlite3.Connection, now: float, limit: int) -> list[int]:
        blocked: set[str] = set()
        chosen: list[int] = []
        rows = db.execute(
            "SELECT id, state, next_attempt_at, lease_until, hold_reason, userids, departments"
            " FROM outbox WHERE state IN ('queued','retry','sending') ORDER BY id"
        )
        for r in rows:
            keys = _keys(r["userids"], r["departments"])
            due = (r["state"] != "sending" and r["next_attempt_at"] <= now) or (
                r["state"] == "sending" and (r["lease_until"] or 0) < now
            )
            if due and not keys & blocked:
                chosen.append(r["id"])
                if len(chosen) >= limit:
                    break
            elif due or r["hold_reason"] is None:
                blocked |= keys
        return chosen

    def renew(self, item_id: int, owner: str, lease_s: float) -> bool:
        """Extend our lease before working on an item; False if it is no longer ours."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET lease_until=? WHERE id=? AND state='sending' AND owner=?",
                (time.time() + lease_s, item_id, owner),
            )
        return cur.rowcount == 1

    def mark_sent(
        self, item_id: int, task_ids: list[int], *, followup_after_s: float | None = None
    ) -> None:
        """Record the send. Not conditional on the lease: DingTalk has the message either way."""
        now = time.time()
        followup = now + followup_after_s if followup_after_s is not None and task_ids else None
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET state='sent', sent_at=?, updated_at=?, lease_until=NULL,"
                " owner=NULL, task_ids=?, attempts=attempts+1, followup_at=? WHERE id=?",
                (now, now, json.dumps(task_ids), followup, item_id),
            )
            self._log(db, item_id, "sent", error=f"task_ids={task_ids}" if task_ids else None)

    def mark_retry(
        self,
        item_id: int,
        *,
        delay_s: float,
        error: str,
        errcode: int | None,
        owner: str | None = None,
        msg: dict[str, Any] | None = None,
    ) -> None:
        """Schedule another attempt; `msg` replaces the message (one cut to fit, say)."""
        self._fail(item_id, "retry", error, errcode, time.time() + delay_s, owner, msg)

    def mark_dead(
        self, item_id: int, *, error: str, errcode: int | None, owner: str | None = None
    ) -> None:
        self._fail(item_id, "dead", error, errcode, None, owner)

    def _fail(self, item_id: int, state: str, error: str, errcode: int | None, due: float | None,
              owner: str | None, msg: dict[str, Any] | None = None) -> None:  # fmt: skip
        now = time.time()
        new_msg = json.dumps(msg, ensure_ascii=False, separators=(",", ":")) if msg else None
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET state=?, updated_at=?, lease_until=NULL, owner=NULL,"
                " attempts=attempts+1, next_attempt_at=COALESCE(?, next_attempt_at), errcode=?,"
                " last_error=?, msg=COALESCE(?, msg)"
                " WHERE id=? AND (? IS NULL OR (state='sending' AND owner=?))",
                (state, now, due, errcode, error, new_msg, item_id, owner, owner),
            )
            self._log(db, item_id, state, errcode, error)

    def release(self, item_id: int, owner: str | None = None) -> None:
        """Give back a claimed item untouched (shutdown, or an earlier item failed)."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET state=CASE WHEN attempts>0 THEN 'retry' ELSE 'queued' END,"
                " lease_until=NULL, owner=NULL WHERE id=? AND state='sending'"
                " AND (? IS NULL OR owner=?)",
                (item_id, owner, owner),
            )

    def release_owner(self, owner: str) -> int:
        """Give back every item leased by `owner` (a claimer known to be dead)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET state=CASE WHEN attempts>0 THEN 'retry' ELSE 'queued' END,"
                " lease_until=NULL, owner=NULL WHERE state='sending' AND owner=?",
                (owner,),
            )
        return cur.rowcount

    def owners(self) -> set[str]:
        with self._read() as db:
            rows = db.execute("SELECT DISTINCT owner FROM outbox WHERE state='sending'").fetchall()
        return {r["owner"] for r in rows if r["owner"]}

    def hold(self, item_id: int, *, until: float, reason: str,
             userids: Iterable[str] | None = None) -> int:  # fmt: skip
        """Park recipients until `until` (a client-side limit). Returns the held item's id.

        With `userids`, only those move to a new held item (same message); the rest of
        the item stays claimed and is sent now. Without, the whole item is held.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM outbox WHERE id=?", (item_id,)).fetchone()
            current = _split(row["userids"])
            moving = [u for u in userids if u in current] if userids is not None else None
            if moving is not None and not moving:
                return item_id  # nobody to hold
            whole = moving is None or (set(moving) >= set(current) and not row["departments"])
            if whole or not moving:
                db.execute(
                    "UPDATE outbox SET state='queued', next_attempt_at=?, due_since=?,"
                    " hold_reason=?, lease_until=NULL, owner=NULL, updated_at=? WHERE id=?",
                    (until, until, reason, now, item_id),
                )
                self._log(db, item_id, "held", error=reason)
                return item_id
            keep = [u for u in current if u not in set(moving)]
            new_id = self._held_copy(db, row, moving, until, reason, row["msg"])
            db.execute("UPDATE outbox SET userids=? WHERE id=?", (",".join(keep), item_id))
            self._log(db, item_id, "split", error=f"{','.join(moving)} -> #{new_id}: {reason}")
            self._log(db, new_id, "held", error=f"from #{item_id}: {reason}")
        return new_id

    def resend(self, item_id: int, userids: Iterable[str], *, at: float, reason: str,
               msg: dict[str, Any]) -> int | None:  # fmt: skip
        """Queue `msg` again for those of a sent item's `userids` DingTalk refused, at `at`.

        Returns the new item's id; None when none of `userids` was a recipient.
        """
        with self._tx() as db:
            row = db.execute("SELECT * FROM outbox WHERE id=?", (item_id,)).fetchone()
            if row is None:
                return None
            current = _split(row["userids"])
            moving = [u for u in dict.fromkeys(userids) if u in current]
            if not moving:
                return None
            text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
            new_id = self._held_copy(db, row, moving, at, reason, text)
            self._log(db, item_id, "resend", error=f"{','.join(moving)} -> #{new_id}: {reason}")
            self._log(db, new_id, "held", error=f"from #{item_id}: {reason}")
        return new_id

    @staticmethod
    def _held_copy(db: sqlite3.Connection, row: sqlite3.Row, userids: list[str], until: float,
                   reason: str, msg: str) -> int:  # fmt: skip
        """A new queued item: `row`'s message `msg` to `userids`, held until `until`."""
        cur = db.execute(
            "INSERT INTO outbox (created_at, updated_at, state, source, receiver, group_key,"
            " msg, userids, departments, next_attempt_at, due_since, hold_reason)"
            " VALUES (?,?,'queued',?,?,?,?,?,'',?,?,?)",
            (row["created_at"], time.time(), row["source"], row["receiver"], row["group_key"],
             msg, ",".join(userids), until, until, reason),
        )  # fmt: skip
        return int(cur.lastrowid or 0)

    # -- send-result follow-up ---------------------------------------------------------------
    def claim_followups(self, *, limit: int = 10, lease_s: float = 120.0) -> list[Item]:
        now = time.time()
        with self._read() as db:
            if not db.execute(
                "SELECT 1 FROM outbox WHERE followup_at<=? LIMIT 1", (now,)
            ).fetchone():
                return []
        with self._tx() as db:
            rows = db.execute(
                "UPDATE outbox SET followup_at=? WHERE id IN (SELECT id FROM outbox"
                " WHERE followup_at<=? ORDER BY followup_at LIMIT ?) RETURNING *",
                (now + lease_s, now, limit),
            ).fetchall()
        return sorted((Item.from_row(r) for r in rows), key=lambda i: i.id)

    def record_followup(
        self,
        item_id: int,
        result: dict[str, Any] | None,
        *,
        error: str | None = None,
        again_at: float | None = None,
    ) -> None:
        """Store what getsendresult said; or note the error and try `again_at` (None: give up)."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET followup_at=?, send_result=COALESCE(?, send_result) WHERE id=?",
                (
                    None if result is not None else again_at,
                    json.dumps(result, ensure_ascii=False) if result is not None else None,
                    item_id,
                ),
            )
            if error:
                self._log(db, item_id, "followup_error", error=error)

    # -- operator actions ------------------------------------------------------------------
    def requeue(self, item_id: int | None = None) -> int:
        """Make a dead or retrying item (or, with None, every dead item) due now."""
        now = time.time()
        one = item_id is not None  # not `if item_id`: an id of 0 must not mean every dead item
        where = "id=? AND state IN ('dead','retry','queued')" if one else "state='dead'"
        with self._tx() as db:
            ids = [
                r["id"]
                for r in db.execute(
                    f"SELECT id FROM outbox WHERE {where}", (item_id,) if one else ()
                )
            ]
            for i in ids:
                db.execute(
                    "UPDATE outbox SET state='queued', next_attempt_at=?, due_since=?,"
                    " hold_reason=NULL, updated_at=? WHERE id=?",
                    (now, now, now, i),
                )
                self._log(db, i, "requeued", error="by operator")
        return len(ids)

    def purge_sent(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        old = "SELECT id FROM outbox WHERE state='sent' AND sent_at<?"
        with self._tx() as db:
            db.execute(f"DELETE FROM attempts WHERE item_id IN ({old})", (cutoff,))
            cur = db.execute("DELETE FROM outbox WHERE state='sent' AND sent_at<?", (cutoff,))
        return cur.rowcount

    # -- inspection ------------------------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM outbox WHERE id=?", (item_id,)).fetchone()
        return Item.from_row(row) if row else None

    def history(self, item_id: int) -> list[dict[str, Any]]:
        with self._read() as db:
            rows = db.execute(
                "SELECT at, outcome, errcode, error FROM attempts WHERE item_id=? ORDER BY id",
                (item_id,),
            ).fetchall()
        return [dict(r) for r in rows]

    def items(self, state: str | None = None, limit: int = 1000) -> list[Item]:
        """By id; without `state`, unfinished items first, so a week of sent ones hides none."""
        with self._read() as db:
            if state:
                rows = db.execute(
                    "SELECT * FROM outbox WHERE state=? ORDER BY id LIMIT ?", (state, limit)
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM outbox ORDER BY state='sent', id LIMIT ?", (limit,)
                ).fetchall()
        return [Item.from_row(r) for r in rows]

    def stats(self) -> tuple[dict[str, int], float | None]:
        """Counts by state, and when the oldest pending, queued or retrying item was accepted."""
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(t) AS oldest FROM (SELECT MIN(received_at) AS t FROM pending UNION ALL"
                " SELECT MIN(created_at) FROM outbox WHERE state IN ('queued','retry'))"
            ).fetchone()
        return self.counts(), row["oldest"]

    def counts(self) -> dict[str, int]:
        """Items by state, and `pending`: accepted webhooks not planned into items yet."""
        with self._read() as db:
            rows = db.execute(
                "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state"
                " UNION ALL SELECT 'pending', COUNT(*) FROM pending"
            ).fetchall()
        found = {r["state"]: r["n"] for r in rows}
        return {s: int(found.get(s, 0)) for s in COUNTED}


def _pending(row: sqlite3.Row) -> Pending:
    return Pending(
        id=row["id"], received_at=row["received_at"], source=row["source"],
        receiver=row["receiver"], group_key=row["group_key"], body=bytes(row["body"]),
        attempts=row["attempts"], last_error=row["last_error"],
    )  # fmt: skip
