"""What the outbox keeps: its tables, the columns added since, its indexes and states.

receiver.delivery.outbox_base opens the store and brings it up to date with
OUTBOX_SCHEMA (through receiver.storage.migrations); the queries are in
receiver.delivery.outbox (the item queue), outbox_claim (claims), outbox_pending
(webhooks not yet planned) and outbox_admin (what operators look at and do).
"""

from __future__ import annotations

import sqlite3

from receiver.delivery.escalation_schema import ESCALATION_SCHEMA
from receiver.storage.migrations import Migration, Schema

OUTBOX_FILE = "outbox.sqlite3"

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
