"""The outbox's queries for group robot copies: a storm's backlog, and merging it.

A robot item has no userids or departments of its own (its mentions are in its body),
so it never joins the per-recipient order of work notifications: a robot that keeps
failing holds up no one's page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from receiver.delivery.outbox_base import OutboxBase
from receiver.delivery.outbox_rows import Item


class RobotQueries(OutboxBase):
    def robot_backlog(self, robot: str, item_id: int, owner: str) -> list[Item]:
        """The other unfinished items for `robot` that a digest may take: queued, retrying,
        held, or claimed by `owner` (this batch). Oldest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM outbox WHERE channel='robot' AND robot=? AND id<>?"
                " AND (state IN ('queued','retry') OR (state='sending' AND owner=?))"
                " ORDER BY id",
                (robot, item_id, owner),
            ).fetchall()
        return [Item.from_row(r) for r in rows]

    def merge_robot(
        self,
        item: Item,
        candidates: list[Item],
        owner: str,
        build: Callable[[list[dict[str, Any]]], dict[str, Any]],
    ) -> tuple[list[int], dict[str, Any]]:
        """Make `item` (ours) carry a digest of itself and the `candidates` it can take.

        `build` makes the digest from the bodies taken, oldest first. A candidate another
        process claimed meanwhile is left out. A merged item is marked sent, and its
        attempts log names the item that carries it. Returns the ids taken and the body.
        """
        now = time.time()
        taken: list[Item] = []
        with self._tx() as db:
            for c in candidates:
                cur = db.execute(
                    "UPDATE outbox SET state='sent', sent_at=?, updated_at=?, lease_until=NULL,"
                    " owner=NULL, hold_reason=NULL, last_error=? WHERE id=? AND channel='robot'"
                    " AND (state IN ('queued','retry') OR (state='sending' AND owner=?))",
                    (now, now, f"merged into #{item.id}", c.id, owner),
                )
                if cur.rowcount:
                    taken.append(c)
                    self._log(db, c.id, "merged", error=f"into #{item.id}")
            if not taken:
                return [], item.msg
            bodies = [i.msg for i in sorted([item, *taken], key=lambda i: i.id)]
            msg = build(bodies)
            text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
            db.execute("UPDATE outbox SET msg=?, updated_at=? WHERE id=?", (text, now, item.id))
            self._log(db, item.id, "digest", error="carries " + ",".join(f"#{t.id}" for t in taken))
        return [t.id for t in taken], msg
