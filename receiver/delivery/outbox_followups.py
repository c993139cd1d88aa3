"""The send-result follow-up's queries: which sent items to ask getsendresult about, and
what it said."""

from __future__ import annotations

import json
import time
from typing import Any

from receiver.delivery.outbox_base import OutboxBase
from receiver.delivery.outbox_rows import Item


class FollowupQueries(OutboxBase):
    def claim_followups(self, *, limit: int = 10, lease_s: float = 120.0) -> list[Item]:
        now = time.time()
        with self._read() as db:
            if not db.execute(
                "SELECT 1 FROM outbox WHERE followup_at<=? LIMIT 1", (now,)
            ).fetchone():
                return []
        skip = " FOR UPDATE SKIP LOCKED" if self.postgres else ""  # another replica's
        with self._tx() as db:
            rows = db.execute(
                "UPDATE outbox SET followup_at=? WHERE id IN (SELECT id FROM outbox"
                f" WHERE followup_at<=? ORDER BY followup_at LIMIT ?{skip}) RETURNING *",
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
