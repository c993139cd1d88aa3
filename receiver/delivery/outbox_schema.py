"""What the outbox keeps: its tables, the columns added since, and its rows as read.

`OutboxBase` opens the SQLite file and brings its schema up to date (OUTBOX_SCHEMA,
through receiver.storage.migrations); the queries are in receiver.delivery.outbox
(the item queue), outbox_claim (claims), outbox_pending (webhooks not yet planned)
and outbox_admin (what operators look at and do).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

from receiver.delivery import wake
from receiver.delivery.escalation_schema import ESCALATION_SCHEMA
from receiver.delivery.pipeline import Entry
from receiver.errors import OutboxUnavailable
from receiver.storage.migrations import SQLITE, Migration, Schema, upgrade
from receiver.storage.pgconn import lock_key
from receiver.storage.postgres import database, upgrade_database
from receiver.storage.sqlite import ThreadConnections

OUTBOX_FILE = "outbox.sqlite3"
log = logging.getLogger(__name__)

OUTBOX_TABLE = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({states})),
    source TEXT NOT NULL,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    msg TEXT NOT NULL,
    userids TEXT NOT NULL,
    departments TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    task_ids TEXT,
    errcode INTEGER,
    last_error TEXT,
    sent_at REAL
)"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    receiver TEXT,
    group_key TEXT NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    receiver TEXT,
    group_key TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES outbox (id),
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    errcode INTEGER,
    error TEXT
);
"""
# Columns added after the first schema; an older file gets them by ALTER TABLE.
COLUMNS = {
    "owner": "TEXT",  # who holds the lease: host:pid:start
    "due_since": "REAL",  # when the item first became due; the give-up age counts from here
    "hold_reason": "TEXT",  # set while held for a client-side limit (does not block order)
    "followup_at": "REAL",  # when getsendresult is due
    "send_result": "TEXT",  # what getsendresult said (JSON)
    "channel": "TEXT",  # NULL: a work notification; 'robot': a group robot's copy
    "robot": "TEXT",  # the robot's name (routing.yaml robots:), for a robot copy
    "notification_id": "INTEGER",  # the webhook it came from: notifications.id (= its pending id)
    "status": "TEXT",  # firing | resolved: the group's status as this receiver saw it
    "superseded_by": "INTEGER",  # the newer item of the same group and person that replaced it
    "call_started_at": "REAL",  # set just before the call: a restart knows it may have gone out
}
# Sending paused for everyone (receiver.delivery.outbox_pause): one row while paused,
# in the outbox's file, so that every process that sends sees the same pause.
PAUSE_SCHEMA = """
CREATE TABLE IF NOT EXISTS pause (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    since REAL NOT NULL,
    reason TEXT NOT NULL,
    error TEXT NOT NULL,
    failures INTEGER NOT NULL,
    probe_at REAL NOT NULL,
    suspect INTEGER,  -- the item whose call failed last: the next probe tries another
    confirmed INTEGER NOT NULL DEFAULT 0,  -- 1 once two different items failed
    prober TEXT  -- the owner that took the last probe: if it dies, the next probe goes at once
)
"""
# Notification keys seen by the accept path (receiver.delivery.outbox_dedup).
SEEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    first_at REAL NOT NULL,
    pending_id INTEGER NOT NULL,
    duplicates INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS seen_first_at ON seen (first_at);
"""
# Delivery processes and their heartbeats (receiver.delivery.replicas).
REPLICAS_SCHEMA = """
CREATE TABLE IF NOT EXISTS replicas (
    owner TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    beat_at REAL NOT NULL
);
"""
# outbox_unfinished: a claim reads a group's unfinished items, not its whole history;
# outbox_unfinished_id: and scans them in id order, without sorting the whole backlog first.
# ORs, not `state IN (…)`: SQLite tests a list of 3 or more through a temporary table it
# builds per index for every row written (bench/README.md). Migration 2 (SQLite only:
# PostgreSQL builds none) drops the older ones; `indexes` makes them anew.
UNFINISHED = "(state='queued' OR state='retry' OR state='sending')"
DROP_OLD = "DROP INDEX IF EXISTS outbox_unfinished; DROP INDEX IF EXISTS outbox_unfinished_id"
INDEXES = f"""
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_followup ON outbox (followup_at) WHERE followup_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS attempts_item ON attempts (item_id);
CREATE INDEX IF NOT EXISTS outbox_group ON outbox (group_key);
CREATE INDEX IF NOT EXISTS outbox_unfinished ON outbox (group_key, receiver)
    WHERE {UNFINISHED};
CREATE INDEX IF NOT EXISTS outbox_unfinished_id ON outbox (id) WHERE {UNFINISHED};
"""

# dry_run: "sent" without credentials: logged, never left the host (docs/delivery.md)
STATES = ("queued", "sending", "sent", "retry", "dead", "superseded", "dry_run")
COUNTED = ("pending", *STATES)  # what counts() reports: accepted webhooks not yet planned too
OUTBOX_SQL = OUTBOX_TABLE.format(states=", ".join(f"'{s}'" for s in STATES))
DUE = (
    "((state IN ('queued','retry') AND next_attempt_at<=:now)"
    " OR (state='sending' AND lease_until<:now))"
)


def migrate_states(db: sqlite3.Connection) -> None:
    """Widen the state CHECK of a file written before a state was added (`superseded`).

    SQLite cannot alter a CHECK constraint, so the table is rebuilt: created anew
    under another name, filled, and swapped in, inside the caller's transaction, so
    a crash half-way leaves the old table as it was. Ids (and so order) are kept.
    """
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='outbox'"
    ).fetchone()
    if row is None or all(f"'{s}'" in row["sql"] for s in STATES):
        return
    cols = [r["name"] for r in db.execute("PRAGMA table_info(outbox)")]
    db.execute("DROP TABLE IF EXISTS outbox_new")
    db.execute(OUTBOX_SQL.replace("EXISTS outbox (", "EXISTS outbox_new (", 1))
    for name, decl in COLUMNS.items():
        db.execute(f"ALTER TABLE outbox_new ADD COLUMN {name} {decl}")
    names = ",".join(cols)
    db.execute(f"INSERT INTO outbox_new ({names}) SELECT {names} FROM outbox")
    seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()
    db.execute("DROP TABLE outbox")  # its indexes go with it; the caller makes them again
    db.execute("ALTER TABLE outbox_new RENAME TO outbox")
    if seq is not None:  # AUTOINCREMENT: never hand out an id that was used before
        db.execute("UPDATE sqlite_sequence SET seq=? WHERE name='outbox'", (seq["seq"],))


# receiver.storage.migrations: a new table goes into a schema string, a new column into
# COLUMNS; anything else is a numbered Migration here.
OUTBOX_SCHEMA = Schema(
    "outbox",
    tables=(OUTBOX_SQL, SCHEMA, PAUSE_SCHEMA, ESCALATION_SCHEMA, SEEN_SCHEMA, REPLICAS_SCHEMA),
    columns={"outbox": COLUMNS},
    migrations=(
        # A file from before `superseded`: its state CHECK is widened (SQLite rebuilds the
        # table). A PostgreSQL database never had the older CHECK.
        Migration(1, "outbox state superseded", run=migrate_states, engines=("sqlite",)),
        Migration(2, "unfinished indexes without IN lists", DROP_OLD, engines=("sqlite",)),
    ),
    indexes=INDEXES,
)


class OutboxBase:
    """The outbox file and its transactions; the queries are in the classes built on it."""

    def __init__(
        self,
        data_dir: str,
        *,
        busy_timeout_ms: int = 5000,
        synchronous: str = "FULL",
        database_url: str | None = None,
    ) -> None:
        """`synchronous`: FULL (the default) fsyncs every commit, as the accept path must.

        The delivery process uses NORMAL: a state change it loses to a power cut is
        redone (a lease runs out, the item is sent again: at-least-once, as documented),
        and each commit no longer holds the write lock through an fsync. On PostgreSQL
        the delivery process's commits are asynchronous instead (`make_delivery`).

        `database_url` (RECEIVER_DATABASE_URL): the outbox lives in that PostgreSQL
        database instead, shared by every replica (receiver.storage.postgres).
        """
        self.path = os.path.join(data_dir, OUTBOX_FILE)
        self.postgres = bool(database_url)
        self._upgraded = not database_url
        if database_url:
            self._db: Any = database(database_url)
            try:
                self._upgrade()
            except OutboxUnavailable as e:  # a worker boots while the database is down:
                log.warning("outbox_unavailable at=start error=%s", e)  # 503 until it is up
            return
        self._db = ThreadConnections(self.path, busy_timeout_ms, synchronous)
        try:
            os.makedirs(data_dir, exist_ok=True)
            with self._tx() as db:  # DDL is transactional: several workers may start at once
                upgrade(db, SQLITE, OUTBOX_SCHEMA)
        except (OSError, OutboxUnavailable, sqlite3.Error) as e:
            raise OutboxUnavailable(f"cannot open outbox {self.path}: {e}") from None

    def _upgrade(self) -> None:
        """PostgreSQL: bring the tables up to date, once per process, when first reachable."""
        if not self._upgraded:
            upgrade_database(self._db, OUTBOX_SCHEMA)
            self._upgraded = True

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. On PostgreSQL the connection is a PgConnection, which
        answers the part of sqlite3.Connection the queries use. One that queued work
        wakes this host's delivery process once it commits (receiver.delivery.wake)."""
        self._upgrade()
        ok = False
        try:
            if self.postgres:
                with self._db.transaction(what="outbox") as db:
                    yield cast(sqlite3.Connection, db)
            else:
                with self._db.transaction() as db:
                    yield db
            ok = True
        finally:
            wake.committed(os.path.dirname(self.path), ok)

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read: it does not hold up the web workers' commits (WAL)."""
        self._upgrade()
        kw = {"what": "outbox"} if self.postgres else {}
        return cast(
            AbstractContextManager[sqlite3.Connection], self._db.transaction(write=False, **kw)
        )

    def _serialize(self, db: sqlite3.Connection, name: str) -> None:
        """Make transactions named `name` take turns across replicas (PostgreSQL).

        SQLite needs nothing: BEGIN IMMEDIATE already lets one writer in at a time.
        """
        if self.postgres:
            db.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))

    def _log(self, db: sqlite3.Connection, item_id: int, outcome: str, errcode: int | None = None,
             error: str | None = None) -> None:  # fmt: skip
        db.execute(
            "INSERT INTO attempts (item_id, at, outcome, errcode, error) VALUES (?,?,?,?,?)",
            (item_id, time.time(), outcome, errcode, error),
        )

    @staticmethod
    def _insert(db: sqlite3.Connection, entries: Iterable[Entry], source: str, group_key: str,
                created_at: float, notification_id: int | None = None) -> list[int]:  # fmt: skip
        now = time.time()
        ids: list[int] = []
        wake.note_items()
        for e in entries:
            cur = db.execute(
                "INSERT INTO outbox (created_at, updated_at, state, source, receiver,"
                " group_key, msg, userids, departments, next_attempt_at, due_since,"
                " channel, robot, notification_id, status)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    created_at, now, "queued", source, e.receiver, group_key,
                    json.dumps(e.msg, ensure_ascii=False, separators=(",", ":")),
                    ",".join(e.userids), ",".join(str(d) for d in e.departments), now,
                    created_at, "robot" if e.robot else None, e.robot, notification_id,
                    e.status,
                ),
            )  # fmt: skip
            ids.append(int(cur.lastrowid or 0))
        return ids
