"""The escalation tables, kept in the outbox database so a step and its items commit together.

planned: each accepted webhook that was planned (its id is the pending id, and
  the id acknowledge tokens name): its receivers and status. Its body, the group's
  state at that time, is the one `notifications` keeps.
notified: who each notification (or escalation step) reached, through which item.
acks: who acknowledged which group, for which receiver, and how.
escalations: one per (receiver, group) incident: its step, when the next is due, its lease.
bar_updates: OA status bar changes waiting to be sent to DingTalk.
group_bars: each (receiver, group)'s latest status bar change, for OA messages sent after it.
"""

ESCALATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS planned (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    group_key TEXT NOT NULL,
    receivers TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notified (
    notification_id INTEGER NOT NULL,
    receiver TEXT NOT NULL,
    userid TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    group_key TEXT NOT NULL,
    at REAL NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    read_at REAL,
    PRIMARY KEY (notification_id, receiver, userid, item_id)
);
CREATE INDEX IF NOT EXISTS notified_group ON notified (receiver, group_key);
CREATE INDEX IF NOT EXISTS notified_item ON notified (item_id);
CREATE TABLE IF NOT EXISTS acks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id INTEGER NOT NULL,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    userid TEXT NOT NULL,
    at REAL NOT NULL,
    via TEXT NOT NULL,
    silence_id TEXT
);
CREATE INDEX IF NOT EXISTS acks_group ON acks (receiver, group_key);
CREATE TABLE IF NOT EXISTS escalations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    policy TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    last_step_at REAL NOT NULL,
    due_at REAL,
    notification_id INTEGER NOT NULL,
    ends_at REAL,
    closed INTEGER NOT NULL DEFAULT 0,
    stopped_at REAL,
    lease_until REAL,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS escalations_due ON escalations (state, due_at);
CREATE INDEX IF NOT EXISTS escalations_group ON escalations (receiver, group_key);
CREATE TABLE IF NOT EXISTS bar_updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL,
    value TEXT NOT NULL,
    bg TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    done_at REAL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS group_bars (
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    value TEXT NOT NULL,
    bg TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (receiver, group_key)
);
"""
