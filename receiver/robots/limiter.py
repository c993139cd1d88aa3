"""Each robot's rate, kept under DingTalk's 20 posts a minute (then a 10-minute block).

The posts of the last minute, and any block DingTalk imposed, live in `limits.sqlite3`
in the data directory beside the work notification's limits (receiver.delivery.limits),
so every process on the host counts the same posts. The window is a sliding minute,
with a margin over DingTalk's, since DingTalk does not say how it counts its minute.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass

from receiver.storage.counters import counting
from receiver.storage.migrations import SQLITE, Schema, upgrade
from receiver.storage.postgres import database, upgrade_database

DINGTALK_PER_MINUTE = 20
WINDOW_S = 61.0  # a second over DingTalk's minute: clocks and queues are not exact

SCHEMA = """
CREATE TABLE IF NOT EXISTS robot_post (robot TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS robot_post_at ON robot_post (robot, at);
CREATE TABLE IF NOT EXISTS robot_block (robot TEXT PRIMARY KEY, until REAL NOT NULL)
"""
ROBOT_LIMITS_SCHEMA = Schema("robot limits", tables=(SCHEMA,))


@dataclass(frozen=True)
class Slot:
    """`wait` > 0: no room, try again in that many seconds. Else a post may go now,
    and `left` more may follow it in this window."""

    wait: float
    left: int = 0


class RobotLimiter:
    def __init__(self, path: str, *, per_minute: int = 18, database_url: str | None = None) -> None:
        """`database_url`: count in PostgreSQL, across replicas (a robot's limit is its own)."""
        if not 1 <= per_minute <= DINGTALK_PER_MINUTE:
            raise ValueError(f"per_minute must be 1..{DINGTALK_PER_MINUTE}, got {per_minute}")
        self.path = path
        self.per_minute = per_minute
        self._pg = database(database_url) if database_url else None
        if self._pg is not None:
            upgrade_database(self._pg, ROBOT_LIMITS_SCHEMA)
            return
        with self._tx() as db:
            upgrade(db, SQLITE, ROBOT_LIMITS_SCHEMA)

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return counting(self._pg, self.path, "robot limits")

    def reserve(self, robot: str, now: float | None = None) -> Slot:
        """Take room for one post to `robot`, or say how long to wait for it."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute("UPDATE robot_post SET at=? WHERE at>?", (now, now))  # clock set back
            db.execute("DELETE FROM robot_post WHERE at<=?", (now - WINDOW_S,))
            block = db.execute("SELECT until FROM robot_block WHERE robot=?", (robot,)).fetchone()
            if block is not None and block["until"] > now:
                return Slot(wait=float(block["until"]) - now)
            rows = db.execute(
                "SELECT at FROM robot_post WHERE robot=? ORDER BY at", (robot,)
            ).fetchall()
            if len(rows) >= self.per_minute:
                oldest = float(rows[len(rows) - self.per_minute]["at"])
                return Slot(wait=max(0.001, oldest + WINDOW_S - now))
            db.execute("INSERT INTO robot_post (robot, at) VALUES (?,?)", (robot, now))
        return Slot(wait=0.0, left=self.per_minute - len(rows) - 1)

    def block(self, robot: str, until: float) -> None:
        """DingTalk blocked `robot` (410100): nothing is posted to it before `until`."""
        greatest = "GREATEST" if self._pg is not None else "MAX"  # SQLite's two-argument MAX
        with self._tx() as db:
            db.execute(
                "INSERT INTO robot_block (robot, until) VALUES (?,?) ON CONFLICT (robot)"
                f" DO UPDATE SET until={greatest}(robot_block.until, excluded.until)",
                (robot, until),
            )
