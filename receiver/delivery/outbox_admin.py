"""What operators see and do with the outbox: requeue, purge, and inspection."""

from __future__ import annotations

import time
from typing import Any

from receiver.delivery import wake
from receiver.delivery.outbox_base import OutboxBase
from receiver.delivery.outbox_rows import Item, Pending, pending_from_row
from receiver.delivery.outbox_schema import COUNTED


class AdminQueries(OutboxBase):
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
            wake.note_items()
        return len(ids)

    def purge_sent(self, older_than_s: float) -> int:
        """Delete sent items sent, and superseded items replaced, longer ago than that."""
        cutoff = time.time() - older_than_s
        where = (
            "(state IN ('sent','dry_run') AND sent_at<:cutoff)"
            " OR (state='superseded' AND updated_at<:cutoff)"
        )
        with self._tx() as db:
            db.execute(
                f"DELETE FROM attempts WHERE item_id IN (SELECT id FROM outbox WHERE {where})",
                {"cutoff": cutoff},
            )
            cur = db.execute(f"DELETE FROM outbox WHERE {where}", {"cutoff": cutoff})
            db.execute(  # webhooks as received: kept as long as an item of theirs is
                "DELETE FROM notifications WHERE received_at<? AND id NOT IN"
                " (SELECT notification_id FROM outbox WHERE notification_id IS NOT NULL)",
                (cutoff,),
            )
        return cur.rowcount

    # -- inspection ------------------------------------------------------------------------
    def notification(self, notification_id: int) -> Pending | None:
        """A planned webhook as it was received (its pending id), while it is kept."""
        with self._read() as db:
            row = db.execute(
                "SELECT *, 0 AS attempts, NULL AS last_error FROM notifications WHERE id=?",
                (notification_id,),
            ).fetchone()
        return pending_from_row(row) if row is not None else None

    def recent_notifications(self, limit: int = 200) -> list[Pending]:
        """The newest planned webhooks still kept, as received, newest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT *, 0 AS attempts, NULL AS last_error FROM notifications"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [pending_from_row(r) for r in rows]

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
                    "SELECT * FROM outbox ORDER BY state IN ('sent','dry_run'), id LIMIT ?",
                    (limit,),
                ).fetchall()
        return [Item.from_row(r) for r in rows]

    def find(
        self,
        state: str | None = None,
        *,
        receiver: str | None = None,
        userid: str | None = None,
        limit: int = 200,
    ) -> list[Item]:
        """Items newest first, by state (or `held`: queued for a limit), receiver and userid."""
        where, args = [], []
        find = "strpos" if self.postgres else "instr"  # the same function, by engine
        if state == "held":
            where.append("state='queued' AND hold_reason IS NOT NULL")
        elif state:
            where.append("state=?")
            args.append(state)
        if receiver:  # a message several receivers share is stored as "a,b"
            where.append(f"{find}(','||receiver||',', ','||?||',')>0")
            args.append(receiver)
        if userid:
            where.append(f"{find}(','||userids||',', ','||?||',')>0")
            args.append(userid)
        sql = "SELECT * FROM outbox" + (" WHERE " + " AND ".join(where) if where else "")
        with self._read() as db:
            rows = db.execute(f"{sql} ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Item.from_row(r) for r in rows]

    def recent_errors(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest failed attempts (retry, dead, follow-up errors), with their item."""
        with self._read() as db:
            rows = db.execute(
                "SELECT a.item_id, a.at, a.outcome, a.errcode, a.error, o.receiver"
                " FROM attempts a JOIN outbox o ON o.id=a.item_id"
                " WHERE a.outcome IN ('retry','dead','followup_error') AND a.error IS NOT NULL"
                " ORDER BY a.id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(r) for r in rows]

    def drop(self, item_id: int) -> Item | None:
        """Delete a dead item, or one held for a limit, with its history; None if not such."""
        with self._tx() as db:
            row = db.execute(
                "DELETE FROM outbox WHERE id=? AND (state='dead' OR"
                " (state='queued' AND hold_reason IS NOT NULL)) RETURNING *",
                (item_id,),
            ).fetchone()
            if row is not None:
                db.execute("DELETE FROM attempts WHERE item_id=?", (item_id,))
        return Item.from_row(row) if row is not None else None

    def stats(self) -> tuple[dict[str, int], float | None]:
        """Counts by state, and when the oldest message not yet delivered was accepted.

        Undelivered: a pending webhook, or an item queued, retrying or being sent.
        """
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(t) AS oldest FROM (SELECT MIN(received_at) AS t FROM pending UNION ALL"
                " SELECT MIN(created_at) FROM outbox WHERE state IN ('queued','retry','sending'))"
                " AS undelivered"  # PostgreSQL before 16 wants the subquery named
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
