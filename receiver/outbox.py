"""The outbox: SQLite (WAL) in RECEIVER_DATA_DIR, the only copy of an accepted alert.

States: queued -> sending -> sent | retry -> ... -> dead. Each transition is its
own committed transaction. A claim carries a lease; an item whose claimer died
goes back to the queue when its lease runs out. Safe for several processes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import OutboxUnavailable
from .pipeline import Entry

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
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES outbox (id),
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    errcode INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_item ON attempts (item_id);
"""

STATES = ("queued", "sending", "sent", "retry", "dead")


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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Item:
        return cls(
            id=row["id"],
            state=row["state"],
            source=row["source"],
            receiver=row["receiver"],
            group_key=row["group_key"],
            msg=json.loads(row["msg"]),
            userids=tuple(u for u in row["userids"].split(",") if u),
            departments=tuple(int(d) for d in row["departments"].split(",") if d),
            attempts=row["attempts"],
            created_at=row["created_at"],
            next_attempt_at=row["next_attempt_at"],
            task_ids=tuple(json.loads(row["task_ids"] or "[]")),
            errcode=row["errcode"],
            last_error=row["last_error"],
        )


class Outbox:
    def __init__(self, data_dir: str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = os.path.join(data_dir, "outbox.sqlite3")
        self.busy_timeout_ms = busy_timeout_ms
        try:
            os.makedirs(data_dir, exist_ok=True)
            with self._connect() as db:
                db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise OutboxUnavailable(f"cannot open outbox {self.path}: {e}") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction; sqlite errors become OutboxUnavailable."""
        try:
            db = self._connect()
        except sqlite3.Error as e:
            raise OutboxUnavailable(f"outbox: {e}") from None
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutboxUnavailable(f"outbox: {e}") from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # -- accept path -----------------------------------------------------------------------
    def enqueue(self, entries: Iterable[Entry], *, source: str, group_key: str) -> list[int]:
        """Commit every entry, or none. Returns the new ids once they are on disk."""
        now = time.time()
        ids: list[int] = []
        with self._tx() as db:
            for e in entries:
                cur = db.execute(
                    "INSERT INTO outbox (created_at, updated_at, state, source, receiver,"
                    " group_key, msg, userids, departments, next_attempt_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        now, now, "queued", source, e.receiver, group_key,
                        json.dumps(e.msg, ensure_ascii=False, separators=(",", ":")),
                        ",".join(e.userids), ",".join(str(d) for d in e.departments), now,
                    ),
                )  # fmt: skip
                ids.append(int(cur.lastrowid or 0))
        return ids

    # -- delivery path ---------------------------------------------------------------------
    def claim(
        self, *, limit: int = 10, lease_s: float = 60.0, now: float | None = None
    ) -> list[Item]:
        """Take due items (or items whose claimer's lease expired), oldest first."""
        now = time.time() if now is None else now
        with self._tx() as db:
            rows = db.execute(
                "UPDATE outbox SET state='sending', lease_until=?, updated_at=? WHERE id IN ("
                " SELECT id FROM outbox WHERE (state IN ('queued','retry') AND next_attempt_at<=?)"
                " OR (state='sending' AND lease_until<?) ORDER BY id LIMIT ?) RETURNING *",
                (now + lease_s, now, now, now, limit),
            ).fetchall()
        return sorted((Item.from_row(r) for r in rows), key=lambda i: i.id)

    def mark_sent(self, item_id: int, task_ids: list[int]) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET state='sent', sent_at=?, updated_at=?, lease_until=NULL,"
                " task_ids=?, attempts=attempts+1 WHERE id=?",
                (now, now, json.dumps(task_ids), item_id),
            )
            db.execute(
                "INSERT INTO attempts (item_id, at, outcome) VALUES (?,?,'sent')", (item_id, now)
            )

    def mark_retry(self, item_id: int, *, delay_s: float, error: str, errcode: int | None) -> None:
        self._fail(item_id, "retry", error, errcode, time.time() + delay_s)

    def mark_dead(self, item_id: int, *, error: str, errcode: int | None) -> None:
        self._fail(item_id, "dead", error, errcode, None)

    def _fail(
        self, item_id: int, state: str, error: str, errcode: int | None, due: float | None
    ) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET state=?, updated_at=?, lease_until=NULL, attempts=attempts+1,"
                " next_attempt_at=COALESCE(?, next_attempt_at), errcode=?, last_error=? WHERE id=?",
                (state, now, due, errcode, error, item_id),
            )
            db.execute(
                "INSERT INTO attempts (item_id, at, outcome, errcode, error) VALUES (?,?,?,?,?)",
                (item_id, now, state, errcode, error),
            )

    def release(self, item_id: int) -> None:
        """Give back a claimed item untouched (shutdown before it was tried)."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET state=CASE WHEN attempts>0 THEN 'retry' ELSE 'queued' END,"
                " lease_until=NULL WHERE id=? AND state='sending'",
                (item_id,),
            )

    # -- inspection ------------------------------------------------------------------------
    def get(self, item_id: int) -> Item | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM outbox WHERE id=?", (item_id,)).fetchone()
        return Item.from_row(row) if row else None

    def items(self, state: str | None = None, limit: int = 1000) -> list[Item]:
        with self._tx() as db:
            if state:
                rows = db.execute(
                    "SELECT * FROM outbox WHERE state=? ORDER BY id LIMIT ?", (state, limit)
                ).fetchall()
            else:
                rows = db.execute("SELECT * FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Item.from_row(r) for r in rows]

    def stats(self) -> tuple[dict[str, int], float | None]:
        """Counts by state, and when the oldest queued or retrying item was accepted."""
        with self._tx() as db:
            row = db.execute(
                "SELECT MIN(created_at) AS oldest FROM outbox WHERE state IN ('queued','retry')"
            ).fetchone()
        return self.counts(), row["oldest"]

    def counts(self) -> dict[str, int]:
        with self._tx() as db:
            rows = db.execute("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state").fetchall()
        found = {r["state"]: r["n"] for r in rows}
        return {s: int(found.get(s, 0)) for s in STATES}
