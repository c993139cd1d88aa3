"""Acknowledgements, OA status bar changes and the retention of the escalation tables.

An ack is recorded per receiver of the notification and stops their active
escalations in the same transaction; the status bar changes of the group's OA
messages are queued with it and sent by the delivery process (Escalator.flip_bars).
"""

from __future__ import annotations

import time
from typing import Any

from receiver.delivery.escalation import ACTIVE
from receiver.delivery.escalation_store import EscalationQueries
from receiver.delivery.status_bars import BAR_WINDOW_S, Bar, incident_since, queue_bars


class AckQueries(EscalationQueries):
    # -- acknowledging -----------------------------------------------------------------------
    def record_ack(self, nid: int, userid: str, *, via: str, at: float | None = None,
                   extra: Any = None, bar: tuple[str, str] | None = None) -> list[str]:  # fmt: skip
        """Acknowledge notification `nid`'s group as `userid`, for each of its receivers; stop
        their active escalations. Returns the receivers acknowledged now (not before)."""
        at = time.time() if at is None else at
        n = self.planned_notification(nid)
        if n is None:
            return []
        done = []
        with self._tx() as db:
            for receiver in n.receivers:
                had = db.execute(
                    "SELECT 1 FROM acks WHERE receiver=? AND group_key=? AND userid=? AND at>=?"
                    " LIMIT 1",
                    (receiver, n.group_key, userid, n.received_at),
                ).fetchone()
                if had:
                    continue
                db.execute(
                    "INSERT INTO acks (notification_id, receiver, group_key, userid, at, via)"
                    " VALUES (?,?,?,?,?,?)",
                    (nid, receiver, n.group_key, userid, at, via),
                )
                db.execute(
                    "UPDATE escalations SET state='acked', stopped_at=?, due_at=NULL,"
                    " lease_until=NULL, owner=NULL WHERE receiver=? AND group_key=? AND state=?"
                    " AND started_at<=?",  # not an incident that began after this notification
                    (at, receiver, n.group_key, ACTIVE, n.received_at),
                )
                if bar is not None:
                    since = incident_since(db, receiver, n.group_key, at - BAR_WINDOW_S)
                    queue_bars(db, receiver, n.group_key, since, *bar, at)
                done.append(receiver)
            if extra is not None and done:
                extra(db, done)
        return done

    def incident_start(self, receiver: str, group_key: str, default: float) -> float:
        """When the group's current incident (its open escalation) started; else `default`."""
        with self._read() as db:
            return incident_since(db, receiver, group_key, default)

    def set_silence(self, nid: int, userid: str, silence_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE acks SET silence_id=? WHERE notification_id=? AND userid=?",
                (silence_id, nid, userid),
            )

    # -- retention ---------------------------------------------------------------------------
    def purge_escalations(self, older_than_s: float, now: float) -> int:
        """Forget stopped escalations, and notifications, people reached and acks, older
        than the retention (as sent items are); an active escalation keeps its records."""
        cutoff = now - older_than_s
        live = "SELECT notification_id FROM escalations WHERE state=?"
        with self._tx() as db:
            gone = db.execute(
                f"DELETE FROM planned WHERE received_at<? AND id NOT IN ({live})",
                (cutoff, ACTIVE),
            ).rowcount
            db.execute(
                "DELETE FROM escalations WHERE state<>? AND COALESCE(stopped_at, started_at)<?",
                (ACTIVE, cutoff),
            )
            db.execute(f"DELETE FROM notified WHERE at<? AND notification_id NOT IN ({live})",
                       (cutoff, ACTIVE))  # fmt: skip
            db.execute("DELETE FROM acks WHERE at<?", (cutoff,))
            db.execute("DELETE FROM bar_updates WHERE created_at<?", (cutoff,))
            db.execute("DELETE FROM group_bars WHERE at<?", (cutoff,))
        return gone

    def next_due(self) -> float | None:
        """When the escalation thread next has work: the earliest active step or unsent
        status bar change, which may be due already; None when there is none."""
        with self._read() as db:
            row = db.execute(
                "SELECT (SELECT MIN(due_at) FROM escalations WHERE state=?) AS step,"
                " (SELECT MIN(next_attempt_at) FROM bar_updates WHERE done_at IS NULL) AS bar",
                (ACTIVE,),
            ).fetchone()
        return min((float(v) for v in (row["step"], row["bar"]) if v is not None), default=None)

    # -- OA status bars ----------------------------------------------------------------------
    def claim_bars(self, *, now: float, lease_s: float = 60.0, limit: int = 20) -> list[Bar]:
        with self._read() as db:
            if not db.execute(
                "SELECT 1 FROM bar_updates WHERE done_at IS NULL AND next_attempt_at<=? LIMIT 1",
                (now,),
            ).fetchone():
                return []
        with self._tx() as db:
            rows = db.execute(
                "UPDATE bar_updates SET next_attempt_at=?, attempts=attempts+1 WHERE id IN"
                " (SELECT id FROM bar_updates WHERE done_at IS NULL AND next_attempt_at<=?"
                " ORDER BY id LIMIT ?) RETURNING *",
                (now + lease_s, now, limit),
            ).fetchall()
        return sorted(
            (Bar(r["id"], r["task_id"], r["value"], r["bg"], r["attempts"]) for r in rows),
            key=lambda b: b.id,
        )

    def bar_done(self, bar_id: int, *, now: float, error: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE bar_updates SET done_at=?, last_error=? WHERE id=?", (now, error, bar_id)
            )

    def bar_retry(self, bar_id: int, *, at: float, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE bar_updates SET next_attempt_at=?, last_error=? WHERE id=?",
                (at, error, bar_id),
            )

    def bars(self) -> list[Bar]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM bar_updates ORDER BY id").fetchall()
        return [Bar(r["id"], r["task_id"], r["value"], r["bg"], r["attempts"], r["done_at"],
                    r["last_error"]) for r in rows]  # fmt: skip
