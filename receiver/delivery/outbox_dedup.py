"""Accepting a webhook once: a second post of the same notification within the window.

Two Alertmanager peers (or two Grafana replicas) can deliver one notification
twice. The accept path records each notification's key (receiver.ingest.dedup) in
the `seen` table, in the same transaction as its `pending` row: a post whose key
was first seen less than the window ago is answered 2xx but not stored again.
The window counts from the first post, so Alertmanager's own repeats (every
repeat_interval) still page. Keys older than the window are deleted as new
posts arrive.
"""

from __future__ import annotations

import time

from receiver.delivery import wake
from receiver.delivery.outbox_rows import Pending
from receiver.delivery.outbox_schema import OutboxBase


class AcceptOnce(OutboxBase):
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
        """Commit a webhook unless its `key` was accepted within `window_s`.

        Returns the pending row and True when it was stored now; the first post's
        pending row (its id) and False for a duplicate, which is counted, not stored.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute("DELETE FROM seen WHERE first_at<=?", (now - window_s,))
            row = db.execute(
                "UPDATE seen SET duplicates=duplicates+1 WHERE key=? RETURNING pending_id",
                (key,),
            ).fetchone()
            if row is not None:
                first = Pending(int(row["pending_id"]), now, source, receiver, group_key, body)
                return first, False
            cur = db.execute(
                "INSERT INTO pending (received_at, source, receiver, group_key, body,"
                " next_attempt_at) VALUES (?,?,?,?,?,?)",
                (now, source, receiver, group_key, body, now),
            )
            pending_id = int(cur.lastrowid or 0)
            db.execute(
                "INSERT INTO seen (key, first_at, pending_id) VALUES (?,?,?)",
                (key, now, pending_id),
            )
            wake.note_items()  # the default accept path (RECEIVER_DEDUP_WINDOW > 0)
        return Pending(pending_id, now, source, receiver, group_key, body), True
