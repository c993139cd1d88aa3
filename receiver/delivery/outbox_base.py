"""The outbox's store and its transactions, on SQLite or PostgreSQL: what every outbox
query class (receiver.delivery.outbox, outbox_claim, outbox_pending, …) is built on."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

from receiver.delivery import wake
from receiver.delivery.outbox_schema import OUTBOX_FILE, OUTBOX_SCHEMA
from receiver.delivery.pipeline import Entry
from receiver.errors import OutboxUnavailable
from receiver.messages.budget import compact
from receiver.storage.migrations import SQLITE, upgrade
from receiver.storage.pgconn import lock_key
from receiver.storage.postgres import database, upgrade_database
from receiver.storage.sqlite import ThreadConnections

log = logging.getLogger(__name__)


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
                    e.text or compact(e.msg),
                    ",".join(e.userids), ",".join(str(d) for d in e.departments), now,
                    created_at, "robot" if e.robot else None, e.robot, notification_id,
                    e.status,
                ),
            )  # fmt: skip
            ids.append(int(cur.lastrowid or 0))
        return ids
