"""Accepting webhooks: many in one transaction (group commit), each at most once.

`accept_many` commits a batch of accepted webhooks in one transaction, so one fsync
(or one PostgreSQL commit) covers them all; receiver.web.committer gathers the
batch from concurrent requests, and answers each only once this returns.

Two Alertmanager peers (or two Grafana replicas) can deliver one notification
twice. The accept path records each notification's key (receiver.ingest.dedup) in
the `seen` table, in the same transaction as its `pending` row: a post whose key
was first seen less than the window ago is answered 2xx but not stored again.
The window counts from the first post, so Alertmanager's own repeats (every
repeat_interval) still page. Keys older than the window are deleted as new
posts arrive. Within one batch the rows are taken in order, so a second post of
a key in the same batch is the duplicate of the first.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from receiver.delivery import wake
from receiver.delivery.outbox_base import OutboxBase
from receiver.delivery.outbox_rows import Pending
from receiver.errors import OutboxUnavailable

INSERT_PENDING = (
    "INSERT INTO pending (received_at, source, receiver, group_key, body, next_attempt_at)"
    " VALUES (?,?,?,?,?,?) RETURNING id"
)

# PostgreSQL: _accept_one as one statement (data-modifying CTEs, which SQLite lacks). The
# key is claimed first, with the id its pending row will have: a replica that accepts the
# same notification at the same moment waits on the key's row, and then counts itself a
# duplicate of the first (on SQLite, one writer at a time, that cannot happen).
ACCEPT_PG = """
WITH nid AS (
    SELECT nextval(pg_get_serial_sequence('pending', 'id')) AS id
), claim AS (
    INSERT INTO seen (key, first_at, pending_id) SELECT ?, ?, id FROM nid
    ON CONFLICT (key) DO UPDATE SET duplicates=seen.duplicates+1 RETURNING pending_id
), ins AS (
    INSERT INTO pending (id, received_at, source, receiver, group_key, body, next_attempt_at)
    SELECT nid.id, ?, ?, ?, ?, ?, ? FROM nid, claim WHERE claim.pending_id=nid.id
    RETURNING id
)
SELECT CASE WHEN claim.pending_id<>nid.id THEN claim.pending_id END AS first_id,
    (SELECT id FROM ins) AS new_id
FROM nid, claim
"""


@dataclass(frozen=True)
class Accept:
    """One webhook to commit. `key` set: at most once within `window_s` (the HA window)."""

    body: bytes
    source: str
    receiver: str | None
    group_key: str
    key: str | None = None
    window_s: float = 0.0


class AcceptOnce(OutboxBase):
    def accept_many(
        self,
        batch: Sequence[Accept] | Callable[[], Sequence[Accept]],
        *,
        now: float | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> list[tuple[Pending, bool]]:
        """Commit `batch` in one transaction; on disk (every row) when this returns.

        `batch` may be a function that returns it: it is called once the transaction
        holds the write lock, so the group committer (receiver.web.committer) can add
        what queued while this waited for the lock. For each webhook, in order: its
        pending row and True when it was stored now; the first post's pending row (its
        id) and False for a duplicate, which is counted, not stored. `before_commit`
        runs after the writes and before the commit (the crash test's fault hook).
        """
        out: list[tuple[Pending, bool]] = []
        with self._tx() as db:
            if callable(batch):
                batch = batch()
            now = time.time() if now is None else now
            windows = {a.window_s for a in batch if a.key is not None}
            if windows:  # one window in practice: the setting's
                db.execute("DELETE FROM seen WHERE first_at<=?", (now - min(windows),))
            if self.postgres:  # every row in one round trip
                out = self._accept_pg(db, batch, now)
            else:
                out = [self._accept_one(db, a, now) for a in batch]
            if any(stored for _, stored in out):
                wake.note_items()
            if before_commit is not None:
                before_commit()
        return out

    @staticmethod
    def _accept_one(db: sqlite3.Connection, a: Accept, now: float) -> tuple[Pending, bool]:
        if a.key is not None:
            row = db.execute(
                "UPDATE seen SET duplicates=duplicates+1 WHERE key=? AND first_at>?"
                " RETURNING pending_id",
                (a.key, now - a.window_s),
            ).fetchone()
            if row is not None:
                first = int(row["pending_id"])
                return Pending(first, now, a.source, a.receiver, a.group_key, a.body), False
        row = db.execute(
            INSERT_PENDING, (now, a.source, a.receiver, a.group_key, a.body, now)
        ).fetchone()
        pending_id = int(row[0])
        if a.key is not None:
            db.execute(
                "INSERT INTO seen (key, first_at, pending_id) VALUES (?,?,?)"
                " ON CONFLICT (key) DO UPDATE SET first_at=excluded.first_at,"
                " pending_id=excluded.pending_id, duplicates=0",
                (a.key, now, pending_id),
            )
        return Pending(pending_id, now, a.source, a.receiver, a.group_key, a.body), True

    @staticmethod
    def _accept_pg(db: Any, batch: Sequence[Accept], now: float) -> list[tuple[Pending, bool]]:
        """_accept_one as one statement a row, all sent at once (PgConnection.execute_each).

        Each statement sees those before it in the transaction: a second post of a key
        in the same batch finds the first one's `seen` row, as on SQLite. Rows without
        a key (RECEIVER_DEDUP_WINDOW=0) are plain inserts.
        """
        rows: dict[int, Any] = {}
        plain = INSERT_PENDING.replace("RETURNING id", "RETURNING NULL AS first_id, id AS new_id")
        for keyed, sql in ((True, ACCEPT_PG), (False, plain)):
            picked = [i for i, a in enumerate(batch) if (a.key is not None) == keyed]
            params: list[tuple[Any, ...]] = [
                (*((batch[i].key, now) if keyed else ()), now, batch[i].source,
                 batch[i].receiver, batch[i].group_key, batch[i].body, now)
                for i in picked
            ]  # fmt: skip
            if len(params) == 1:  # a pipeline's set-up costs more than it saves for one
                got = [db.execute(sql, params[0]).fetchone()]
            else:
                got = db.execute_each(sql, params) if params else []
            rows.update(zip(picked, got, strict=True))
        out: list[tuple[Pending, bool]] = []
        for i, a in enumerate(batch):
            row = rows[i]
            if row is None or (row["first_id"] is None and row["new_id"] is None):
                raise OutboxUnavailable("outbox: the accept statement returned no row")
            stored = row["first_id"] is None
            pending_id = int(row["new_id"] if stored else row["first_id"])
            out.append((Pending(pending_id, now, a.source, a.receiver, a.group_key, a.body),
                        stored))  # fmt: skip
        return out

    def accept_once(
        self,
        body: bytes,
        *,
        source: str,
        receiver: str | None,
        group_key: str,
        key: str,
        window_s: float,
        now: float | None = None,
    ) -> tuple[Pending, bool]:
        """One webhook, unless its `key` was accepted within `window_s` (see accept_many)."""
        return self.accept_many([Accept(body, source, receiver, group_key, key, window_s)],
                                now=now)[0]  # fmt: skip

    def accept(self, body: bytes, *, source: str, receiver: str | None, group_key: str) -> Pending:
        """Commit a validated webhook body; it is on disk when this returns."""
        return self.accept_many([Accept(body, source, receiver, group_key)])[0][0]
