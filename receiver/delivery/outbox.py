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
Claims keep order per (receiver, alert group, person), and replace an older waiting
item by a newer one of the same group (receiver.delivery.order).
"""

from __future__ import annotations

import json
import time
from typing import Any

from receiver.delivery.ack_store import AckQueries
from receiver.delivery.outbox_admin import AdminQueries
from receiver.delivery.outbox_claim import ClaimQueries
from receiver.delivery.outbox_dedup import AcceptOnce
from receiver.delivery.outbox_followups import FollowupQueries
from receiver.delivery.outbox_holds import HoldQueries
from receiver.delivery.outbox_pause import PauseQueries
from receiver.delivery.outbox_pending import PendingWebhooks
from receiver.delivery.outbox_replicas import ReplicaQueries
from receiver.delivery.outbox_robots import RobotQueries
from receiver.delivery.outbox_rows import Item, Pending
from receiver.delivery.outbox_schema import COUNTED, STATES
from receiver.delivery.status_bars import OA_HEAD, catch_up

__all__ = ["COUNTED", "STATES", "Item", "Outbox", "Pending"]

UNKNOWN_OUTCOME = (
    "its claimer died after the call started: it may have reached DingTalk;"
    " it is sent again (DingTalk delivers the same content to a person once a day)"
)


class Outbox(
    ClaimQueries,
    PendingWebhooks,
    AcceptOnce,
    AdminQueries,
    FollowupQueries,
    HoldQueries,
    PauseQueries,
    RobotQueries,
    AckQueries,
    ReplicaQueries,
):
    """The queue of items: claims and leases, and every state change of a send."""

    # -- delivery path (the claim: receiver.delivery.outbox_claim) ------------------------
    def start_call(self, item_id: int, owner: str, lease_s: float) -> bool:
        """Record that the call is about to go out, renewing our lease; False if not ours.

        Written before the call, so that after a crash (or a write that failed after it)
        `outbox show` says the call may have reached DingTalk.
        """
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET lease_until=?, call_started_at=?"
                " WHERE id=? AND state='sending' AND owner=?",
                (now + lease_s, now, item_id, owner),
            )
        return cur.rowcount == 1

    def renew(self, item_id: int, owner: str, lease_s: float) -> bool:
        """Extend our lease before working on an item; False if it is no longer ours."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET lease_until=? WHERE id=? AND state='sending' AND owner=?",
                (time.time() + lease_s, item_id, owner),
            )
        return cur.rowcount == 1

    def mark_sent(
        self, item_id: int, task_ids: list[int], *, followup_after_s: float | None = None,
        state: str = "sent",
    ) -> None:  # fmt: skip
        """Record the send. Not conditional on the lease: DingTalk has the message either way.

        `state="dry_run"`: logged instead of sent (no credentials); it never left the host.
        """
        now = time.time()
        followup = now + followup_after_s if followup_after_s is not None and task_ids else None
        with self._tx() as db:
            row = db.execute(
                "UPDATE outbox SET state=?, sent_at=?, updated_at=?, lease_until=NULL,"
                " owner=NULL, task_ids=?, attempts=attempts+1, followup_at=? WHERE id=?"
                " RETURNING receiver, group_key, created_at, substr(msg, 1, ?) AS head",
                (state, now, now, json.dumps(task_ids), followup, item_id, len(OA_HEAD)),
            ).fetchone()
            if row is not None and task_ids and row["head"] == OA_HEAD:
                catch_up(db, row["receiver"], row["group_key"], row["created_at"], task_ids, now)
            self._log(db, item_id, state, error=f"task_ids={task_ids}" if task_ids else None)

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
                " call_started_at=NULL,"
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
            rows = db.execute(
                "UPDATE outbox SET state=CASE WHEN attempts>0 THEN 'retry' ELSE 'queued' END,"
                " lease_until=NULL, owner=NULL WHERE state='sending' AND owner=?"
                " RETURNING id, call_started_at",
                (owner,),
            ).fetchall()
            for r in rows:
                if r["call_started_at"] is not None:
                    self._log(db, r["id"], "recovered", error=UNKNOWN_OUTCOME)
            # If it died probing a pause, the next probe need not wait out its lease.
            db.execute("UPDATE pause SET probe_at=? WHERE prober=?", (time.time(), owner))
        return len(rows)

    def owners(self) -> set[str]:
        with self._read() as db:
            rows = db.execute("SELECT DISTINCT owner FROM outbox WHERE state='sending'").fetchall()
        return {r["owner"] for r in rows if r["owner"]}
