"""Sending paused for everyone: one row in the outbox's file, shared by every sender.

While DingTalk fails for everyone (an outage, a throttle, no token), the worker
sends nothing but one probe call at a time. The row says why, since when, and when
the next probe is due; taking the probe is a conditional write, so of several
delivery processes exactly one sends it. The first success deletes the row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from receiver.delivery.outbox_base import OutboxBase


@dataclass(frozen=True)
class PauseState:
    since: float
    reason: str  # a bounded label: network, timeout, http_5xx, busy, throttled, token …
    error: str  # the last error, as logged
    failures: int  # platform failures in a row, the probes' included
    probe_at: float  # when the next probe may go
    suspect: int | None = None  # the item whose call failed last
    confirmed: bool = False  # calls of two different items failed: it is not one message's fault

    @classmethod
    def from_row(cls, row: Any) -> PauseState:
        return cls(row["since"], row["reason"], row["error"], row["failures"], row["probe_at"],
                   row["suspect"], bool(row["confirmed"]))  # fmt: skip


class PauseQueries(OutboxBase):
    def pause_state(self) -> PauseState | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM pause WHERE id=1").fetchone()
        return PauseState.from_row(row) if row is not None else None

    def pause(self, *, reason: str, error: str, probe_in: float, item_id: int) -> PauseState:
        """Start the pause, or extend it after a failed probe; returns it as it now is.

        `item_id` is the item whose call failed. The pause is `confirmed` once a second,
        different item fails too; until then it may be that one message's own fault.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO pause (id, since, reason, error, failures, probe_at, suspect)"
                " VALUES (1,?,?,?,1,?,?) ON CONFLICT (id) DO UPDATE SET reason=excluded.reason,"
                " error=excluded.error, failures=pause.failures+1, probe_at=excluded.probe_at,"
                " confirmed=CASE WHEN pause.confirmed=1 OR pause.suspect IS NULL"  # either engine
                " OR pause.suspect<>excluded.suspect THEN 1 ELSE 0 END,"
                " suspect=excluded.suspect RETURNING *",
                (now, reason, error, now + probe_in, item_id),
            ).fetchone()
        return PauseState.from_row(row)

    def take_probe(self, lease_s: float, owner: str = "", now: float | None = None) -> bool:
        """While paused: True for the one caller that may send the probe now.

        The next probe is pushed `lease_s` ahead; its outcome sets the real next time.
        A prober that dies is found when its lease is recovered (`release_owner`), and
        the next probe may then go at once.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                "UPDATE pause SET probe_at=?, prober=? WHERE id=1 AND probe_at<=?",
                (now + lease_s, owner, now),
            )
        return cur.rowcount == 1

    def reprobe(self) -> None:
        """The probe taken made no call: let the next one go now (if still paused)."""
        with self._tx() as db:
            db.execute("UPDATE pause SET probe_at=? WHERE id=1", (time.time(),))

    def resume(self) -> PauseState | None:
        """End the pause (a call went through); what it was, or None if there was none."""
        with self._tx() as db:
            row = db.execute("DELETE FROM pause WHERE id=1 RETURNING *").fetchone()
        return PauseState.from_row(row) if row is not None else None

    def paused_reason(self) -> tuple[str, float] | None:
        """For /metrics: why sending is paused, and since when; None when it is not."""
        state = self.pause_state()
        return (state.reason, state.since) if state is not None else None

    def release_paused(self, item_id: int, owner: str, *, error: str,
                       errcode: int | None) -> None:  # fmt: skip
        """Give back an item whose call failed for everyone: no attempt counted, no backoff."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET state=CASE WHEN attempts>0 THEN 'retry' ELSE 'queued' END,"
                " lease_until=NULL, owner=NULL, call_started_at=NULL, updated_at=?"
                " WHERE id=? AND state='sending' AND owner=?",
                (time.time(), item_id, owner),
            )
            if cur.rowcount:
                self._log(db, item_id, "paused", errcode, error)

    def charge(self, item_id: int, *, delay_s: float, error: str,
               errcode: int | None) -> bool:  # fmt: skip
        """Count a failure that looked like DingTalk's against the item after all.

        Its call failed, and the next call, of another message, went through: the
        failure was this message's own. It waits its own backoff from now.
        """
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET state='retry', attempts=attempts+1, next_attempt_at=?,"
                " updated_at=?, errcode=?, last_error=? WHERE id=? AND state IN ('queued','retry')",
                (now + delay_s, now, errcode, error, item_id),
            )
            if cur.rowcount:
                self._log(db, item_id, "retry", errcode, error)
        return cur.rowcount == 1

    def expire(self, older_than_s: float, *, error: str, errcode: int | None) -> list[int]:
        """Dead-letter waiting items accepted (or requeued) longer ago than `older_than_s`.

        Used while sending is paused: nothing of theirs was tried, but they are too old.
        """
        now = time.time()
        with self._tx() as db:
            rows = db.execute(
                "UPDATE outbox SET state='dead', updated_at=?, errcode=?, last_error=?"
                " WHERE state IN ('queued','retry') AND hold_reason IS NULL"
                " AND COALESCE(due_since, created_at)<? RETURNING id",
                (now, errcode, error, now - older_than_s),
            ).fetchall()
            for r in rows:
                self._log(db, r["id"], "dead", errcode, error)
        return sorted(r["id"] for r in rows)
