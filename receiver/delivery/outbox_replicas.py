"""The delivery processes that share the outbox, and the leases of the ones that died.

Each delivery process (one per `serve`, so one per replica) writes a heartbeat row.
A lease alone would hold a dead replica's items until it runs out (a minute or more);
the heartbeat says within seconds that its owner is gone, and its items are given back
(receiver.delivery.replicas, through `release_owner`), so another replica takes them
over. A replica that was only paused (a long GC, a partition) and
comes back finds its leases gone and stops work on those items (`renew` fails); one
it was already sending may go out twice, which is the at-least-once floor.
"""

from __future__ import annotations

import time

from receiver.delivery.outbox_base import OutboxBase


class ReplicaQueries(OutboxBase):
    def beat(self, owner: str, *, started_at: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "INSERT INTO replicas (owner, started_at, beat_at) VALUES (?,?,?)"
                " ON CONFLICT (owner) DO UPDATE SET beat_at=excluded.beat_at",
                (owner, started_at, now),
            )

    def forget(self, owner: str) -> None:
        """A delivery process that stops cleanly takes its heartbeat with it."""
        with self._tx() as db:
            db.execute("DELETE FROM replicas WHERE owner=?", (owner,))

    def replicas(self) -> dict[str, float]:
        """owner -> when it last beat."""
        with self._read() as db:
            rows = db.execute("SELECT owner, beat_at FROM replicas ORDER BY owner").fetchall()
        return {str(r["owner"]): float(r["beat_at"]) for r in rows}

    def stale_replicas(self, *, stale_s: float, now: float | None = None) -> list[str]:
        """The owners whose heartbeat is older than `stale_s`."""
        now = time.time() if now is None else now
        with self._read() as db:
            rows = db.execute(
                "SELECT owner FROM replicas WHERE beat_at<? ORDER BY owner", (now - stale_s,)
            ).fetchall()
        return [str(r["owner"]) for r in rows]

    def forget_stale(self, owner: str, *, before: float) -> None:
        """Drop `owner`'s heartbeat, unless it beat again since `before` (it came back)."""
        with self._tx() as db:
            db.execute("DELETE FROM replicas WHERE owner=? AND beat_at<?", (owner, before))
