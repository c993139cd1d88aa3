"""Accepted webhooks not yet planned into items (outbox_dedup writes them), and planning."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from receiver.delivery import wake
from receiver.delivery.outbox_base import OutboxBase
from receiver.delivery.outbox_rows import Pending, pending_from_row
from receiver.delivery.pipeline import Entry

# Due webhooks a sharded planner looks through (ids and keys only) for each one it may
# plan: its own groups' are about 1 in RECEIVER_DELIVERY_PROCESSES of them.
SHARD_SCAN = 8

# A webhook planned into its items: (the pending row, its entries, what else to write).
Planned = tuple[Pending, list[Entry], Callable[[Any, list[int]], None] | None]


class PendingWebhooks(OutboxBase):
    def enqueue(self, entries: Iterable[Entry], *, source: str, group_key: str) -> list[int]:
        """Commit every entry, or none. Returns the new ids once they are on disk."""
        with self._tx() as db:
            return self._insert(db, entries, source, group_key, time.time())

    # -- planning (delivery process) -------------------------------------------------------
    def due_pending(
        self,
        *,
        limit: int = 20,
        now: float | None = None,
        taken: Callable[[str], bool] | None = None,
    ) -> list[Pending]:
        """Pending webhooks to plan, oldest first; only of the groups `taken` says (if
        given: receiver.delivery.shards), found among the first SHARD_SCAN × limit due."""
        now = time.time() if now is None else now
        with self._read() as db:
            if taken is None:
                rows = db.execute(
                    "SELECT * FROM pending WHERE next_attempt_at<=? ORDER BY id LIMIT ?",
                    (now, limit),
                ).fetchall()
                return [pending_from_row(r) for r in rows]
            keys = db.execute(
                "SELECT id, group_key FROM pending WHERE next_attempt_at<=? ORDER BY id LIMIT ?",
                (now, SHARD_SCAN * limit),
            ).fetchall()
            ids = [r["id"] for r in keys if taken(r["group_key"] or "")][:limit]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"SELECT * FROM pending WHERE id IN ({marks}) ORDER BY id", ids
            ).fetchall()
        return [pending_from_row(r) for r in rows]

    def pending(self, limit: int = 1000) -> list[Pending]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM pending ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [pending_from_row(r) for r in rows]

    def expand(
        self,
        p: Pending,
        entries: Iterable[Entry],
        also: Callable[[Any, list[int]], None] | None = None,
    ) -> list[int] | None:
        """Replace pending `p` with its items, in one transaction; None if already done.

        The webhook as received is kept (table `notifications`, until retention) for the
        full-notification page and the console; its items point to it. `also(db, ids)`
        writes more in the same transaction (the escalation records).
        """
        return self.expand_many([(p, list(entries), also)])[0]

    def expand_many(self, plans: Sequence[Planned]) -> list[list[int] | None]:
        """`expand` for several webhooks in one transaction (one commit, not one each).

        For each, in order: its items' ids, or None when another planner did it first.
        """
        out: list[list[int] | None] = []
        with self._tx() as db:
            for p, entries, also in plans:
                db.execute(
                    "INSERT INTO notifications (id, received_at, source, receiver,"
                    " group_key, body) SELECT id, received_at, source, receiver, group_key, body"
                    " FROM pending WHERE id=? ON CONFLICT (id) DO NOTHING",  # either engine
                    (p.id,),
                )
                if db.execute("DELETE FROM pending WHERE id=?", (p.id,)).rowcount != 1:
                    out.append(None)
                    continue
                ids = self._insert(db, entries, p.source, p.group_key, p.received_at, p.id)
                if also is not None:
                    also(db, ids)
                out.append(ids)
        return out

    def replace_pending(
        self, db: Any, olders: Sequence[tuple[Pending, str]], by: int, newest: Pending,
        receivers: str,
    ) -> list[int]:  # fmt: skip
        """In `by`'s expand transaction: the webhooks (with their status) that the newest
        of their group replaced before they were planned (receiver.delivery.replacing).

        Each is kept as received (table `notifications`), as a planned one is, and leaves
        one row in the outbox, `superseded` by `by` (the newest's first item), with no
        message and nobody to send to: what `outbox list` and the console show of it.
        Returns the pending ids replaced (not one another planner took first).
        """
        now, done = time.time(), []
        why = f"webhook p{newest.id}, newer, of the same group, replaced it before it was planned"
        for p, status in olders:
            db.execute(
                "INSERT INTO notifications (id, received_at, source, receiver,"
                " group_key, body) SELECT id, received_at, source, receiver, group_key, body"
                " FROM pending WHERE id=? ON CONFLICT (id) DO NOTHING",
                (p.id,),
            )
            if db.execute("DELETE FROM pending WHERE id=?", (p.id,)).rowcount != 1:
                continue
            cur = db.execute(
                "INSERT INTO outbox (created_at, updated_at, state, source, receiver,"
                " group_key, msg, userids, departments, next_attempt_at, due_since,"
                " notification_id, status, superseded_by, last_error)"
                " VALUES (?,?,'superseded',?,?,?,'{}','','',?,?,?,?,?,?)",
                (p.received_at, now, p.source, receivers, p.group_key, now, p.received_at,
                 p.id, status, by, why),
            )  # fmt: skip
            self._log(db, int(cur.lastrowid or 0), "superseded", error=f"by #{by}: {why}")
            done.append(p.id)
        return done

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
            wake.note_items()
        return cur.rowcount == 1

    def drop_pending(self, pending_id: int) -> Pending | None:
        """Delete a pending webhook an operator gave up on; what it was, or None."""
        with self._tx() as db:
            row = db.execute("DELETE FROM pending WHERE id=? RETURNING *", (pending_id,)).fetchone()
        return pending_from_row(row) if row is not None else None
