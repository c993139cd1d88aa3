"""Holding recipients back for a limit: ours (the daily cap) or DingTalk's (a resend)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from receiver.delivery.outbox_base import OutboxBase
from receiver.delivery.outbox_rows import split_ids


class HoldQueries(OutboxBase):
    def hold(self, item_id: int, *, until: float, reason: str,
             userids: Iterable[str] | None = None) -> int:  # fmt: skip
        """Park recipients until `until` (a client-side limit). Returns the held item's id.

        With `userids`, only those move to a new held item (same message); the rest of
        the item stays claimed and is sent now. Without, the whole item is held.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM outbox WHERE id=?", (item_id,)).fetchone()
            current = split_ids(row["userids"])
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
            current = split_ids(row["userids"])
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
            " msg, userids, departments, next_attempt_at, due_since, hold_reason,"
            " notification_id, status) VALUES (?,?,'queued',?,?,?,?,?,'',?,?,?,?,?)",
            (row["created_at"], time.time(), row["source"], row["receiver"], row["group_key"],
             msg, ",".join(userids), until, until, reason, row["notification_id"],
             row["status"]),
        )  # fmt: skip
        return int(cur.lastrowid or 0)
