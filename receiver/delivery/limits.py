"""Client-side limits, so that DingTalk never throttles us (DINGTALK.md, "silent rules").

- calls per second to asyncsend_v2 (`RECEIVER_SEND_RATE`);
- recipients per minute (`RECEIVER_RECIPIENTS_PER_MINUTE`, DingTalk's 5,000);
- messages per user per day (`RECEIVER_USER_DAILY_LIMIT`, DingTalk's 500), with a
  warning at 80 %. DingTalk's day is China time, whatever RECEIVER_TIMEZONE says.

The counters live in `limits.sqlite3` in the data directory, so every process on the
host shares them and a restart does not forget them. A department counts as one recipient: its
size is not known here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from receiver.storage.counters import counting
from receiver.storage.migrations import SQLITE, Schema, upgrade
from receiver.storage.postgres import database, upgrade_database

DINGTALK_DAY = ZoneInfo("Asia/Shanghai")
WARN_FRACTION = 0.8

TABLES = """
CREATE TABLE IF NOT EXISTS send_log (at REAL NOT NULL, recipients INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS send_log_at ON send_log (at);
CREATE TABLE IF NOT EXISTS send_total (
    id INTEGER PRIMARY KEY CHECK (id = 1), recipients INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS user_day (
    day TEXT NOT NULL, userid TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, userid)
)
"""
LIMITS_SCHEMA = Schema("limits", tables=(TABLES,))
# At every start, not a migration: the minute's total summed afresh (see reserve).
RESUM = """
INSERT INTO send_total VALUES (1, (SELECT COALESCE(SUM(recipients), 0) FROM send_log))
    ON CONFLICT (id) DO UPDATE SET recipients=excluded.recipients
"""


# The window is full when the call `calls_per_window` calls back is in it; `first` is
# that call (the window has room again when it leaves), or NULL when the window has room.
# SQLite: that call is found by its rowid (calls are logged in order, and leave the
# log oldest first), one index look-up; counting the window's calls instead read every
# one of them, 45 µs at 800 calls a second (bench/README.md). PostgreSQL has no rowid:
# there the window's calls are counted.
_ENDS = (
    " (SELECT MAX(at) FROM send_log) AS last, (SELECT MIN(at) FROM send_log) AS oldest,"
    " (SELECT recipients FROM send_total) AS total"
)
WINDOW_BY_ROWID = (
    "SELECT (SELECT at FROM send_log WHERE rowid=(SELECT MAX(rowid) FROM send_log)-?) AS first,"
    + _ENDS
)
WINDOW_BY_COUNT = (
    "SELECT CASE WHEN COUNT(*)>=%d THEN MIN(at) END AS first," + _ENDS + " FROM send_log WHERE at>?"
)


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, DINGTALK_DAY).date().isoformat()


def next_day(ts: float) -> float:
    """The start of the next DingTalk day after `ts`."""
    local = datetime.fromtimestamp(ts, DINGTALK_DAY)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
    return midnight.replace(tzinfo=DINGTALK_DAY).timestamp()


class Limits:
    def __init__(
        self,
        path: str,
        *,
        rate: float = 10.0,
        per_minute: int = 5000,
        daily: int = 500,
        database_url: str | None = None,
    ) -> None:
        """`path`: the SQLite file; `database_url`: PostgreSQL instead, where the counts
        are shared by every replica (DingTalk's limits are per app, not per host)."""
        self.path = path
        self._pg = database(database_url) if database_url else None
        self.window = max(1.0, 1.0 / rate)
        self.calls_per_window = max(1, round(rate * self.window))
        self.per_minute = per_minute
        self.daily = daily
        self._purged = ""  # the day count_sent last purged older days on
        self._window_sql = (
            WINDOW_BY_COUNT % self.calls_per_window if self._pg is not None else WINDOW_BY_ROWID
        )
        if self._pg is not None:
            upgrade_database(self._pg, LIMITS_SCHEMA)
            with self._tx() as db:
                db.execute(RESUM)
            return
        with self._tx() as db:
            upgrade(db, SQLITE, LIMITS_SCHEMA)
            db.execute(RESUM)

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return counting(self._pg, self.path, "limits")

    def reserve(self, recipients: int, now: float | None = None) -> float:
        """Take room for one call to `recipients`; or return how long to wait first."""
        now = time.time() if now is None else now
        with self._tx() as db:
            return self._reserve(db, recipients, now)

    def admit(
        self, userids: Iterable[str], departments: int, *, today: float, now: float | None = None
    ) -> tuple[list[str], float]:
        """over_daily, then reserve for the rest, in one transaction (one, not two, a send).

        Returns the userids past the daily cap on the DingTalk day of `today`, and how long
        to wait for room (0: the call to the others and the `departments` is counted; and
        nothing is counted when no one is left).
        """
        ids, now = list(userids), time.time() if now is None else now
        with self._tx() as db:
            over = self._over(db, ids, day_of(today))
            n = len(ids) - len(over) + departments
            return over, self._reserve(db, n, now) if n else 0.0

    def _reserve(self, db: sqlite3.Connection, recipients: int, now: float) -> float:
        # One read for the window, the minute's total and the log's ends (each a round
        # trip on PostgreSQL); calls older than the minute leave the log only when the
        # total would be over, or the log holds two minutes (the total overcounts until
        # then, so it is never under). The window counts within the minute only, as if
        # they had left it.
        since = max(now - self.window, now - 60)
        args = (since,) if self._pg is not None else (self.calls_per_window - 1,)
        row = db.execute(self._window_sql, args).fetchone()
        if row["last"] is not None and row["last"] > now:
            # A call logged in the future means the clock was set back: count it as made
            # now, or it would hold up every send (and the minute) for as long as the jump.
            db.execute("UPDATE send_log SET at=? WHERE at>?", (now, now))
            return self._reserve(db, recipients, now)
        if row["first"] is not None and row["first"] > since:  # the window is full
            return max(0.001, float(row["first"]) + self.window - now)
        # The minute's total is kept, not summed: at a high send rate the log holds
        # tens of thousands of rows, and summing them on every call was a fifth of
        # the delivery process's CPU (bench/README.md). It is summed afresh when a
        # process starts, so a file an older version wrote to cannot leave it wrong.
        total = int(row["total"] or 0)
        aged = row["oldest"] is not None and row["oldest"] <= now - 60
        if aged and (total + recipients > self.per_minute or row["oldest"] <= now - 120):
            total -= self._age_out(db, now)
        if total and total + recipients > self.per_minute:
            for r in db.execute("SELECT at, recipients FROM send_log ORDER BY at"):
                total -= r["recipients"]  # wait until enough of the minute has aged out
                # A call bigger than the whole minute's room goes alone, in an empty minute.
                if total <= 0 or total + recipients <= self.per_minute:
                    return max(0.001, float(r["at"]) + 60 - now)
        db.execute("INSERT INTO send_log (at, recipients) VALUES (?,?)", (now, recipients))
        db.execute("UPDATE send_total SET recipients=recipients+?", (recipients,))
        return 0.0

    @staticmethod
    def _age_out(db: sqlite3.Connection, now: float) -> int:
        """Calls a minute old leave the log and the minute's total; how many recipients."""
        aged = db.execute(
            "DELETE FROM send_log WHERE at<=? RETURNING recipients", (now - 60,)
        ).fetchall()
        n = int(sum(r[0] for r in aged))
        if n:
            db.execute("UPDATE send_total SET recipients=recipients-?", (n,))
        return n

    def over_daily(self, userids: Iterable[str], now: float | None = None) -> list[str]:
        """The userids that already had their daily number of messages today."""
        ids = list(userids)
        if not ids:
            return []
        day = day_of(time.time() if now is None else now)
        with self._tx() as db:
            return self._over(db, ids, day)

    def _over(self, db: sqlite3.Connection, ids: list[str], day: str) -> list[str]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = db.execute(
            f"SELECT userid FROM user_day WHERE day=? AND n>=? AND userid IN ({marks})",
            (day, self.daily, *ids),
        ).fetchall()
        over = {r["userid"] for r in rows}
        return [u for u in ids if u in over]

    def count_sent(self, userids: Iterable[str], now: float | None = None) -> list[str]:
        """Count one message to each userid; return those that just reached 80 % of the cap."""
        now = time.time() if now is None else now
        day = day_of(now)
        warn_at = max(1, int(self.daily * WARN_FRACTION))
        crossed = []
        # Without the replicas' lock: each upsert is atomic on its row, and returns its own n.
        with counting(self._pg, self.path, "limits", lock=False) as db:
            # One clock for the whole call: a purge on the real clock deleted a caller's
            # rows whenever its `now` was two days behind it (a red CI from 2026-11-30 on).
            # Once a day (of this process), not once a send.
            if self._purged != day:
                db.execute("DELETE FROM user_day WHERE day<?", (day_of(now - 2 * 86400),))
                self._purged = day
            for u in userids:
                row = db.execute(
                    "INSERT INTO user_day (day, userid, n) VALUES (?,?,1)"
                    " ON CONFLICT (day, userid) DO UPDATE SET n=user_day.n+1 RETURNING n",
                    (day, u),
                ).fetchone()
                if row["n"] == warn_at:
                    crossed.append(u)
        return crossed
