"""SQLite plumbing shared by the outbox, the limits' counters and the token cache.

Every sqlite3 error is translated to OutboxUnavailable here: the web worker
answers 503 for it, and the delivery worker waits and tries again.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from receiver.errors import OutboxUnavailable
from receiver.storage.migrations import SQLITE, Schema, Status, status, upgrade


def connect(
    path: str, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL"
) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
    db.row_factory = sqlite3.Row
    # Turning a new file to WAL needs it to itself, and SQLite answers "locked" at once,
    # without its busy handler, while another connection writes to it: processes opening
    # a fresh data directory together (the workers, delivery) met it once in 30 starts.
    _while_locked(db, "PRAGMA journal_mode=WAL", busy_timeout_ms / 1000)
    db.execute(f"PRAGMA synchronous={synchronous}")
    # Short: SQLite's own waits (see _begin_immediate) stop after this; then ours go on.
    db.execute(f"PRAGMA busy_timeout={min(busy_timeout_ms, 20)}")
    return db


BEGIN_WAIT_S = 5.0


def _begin_immediate(db: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock in short, jittered steps.

    SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries, so under
    contention a writer often sleeps long after the lock was freed: the benchmark's
    p99 was hundreds of ms while one commit takes under a millisecond. Here the
    connection's busy timeout is 20 ms: SQLite's handler takes the first 18 ms of a
    wait (its sleeps of 1, 2, 5 and 10 ms), and a longer wait is ours, in steps of
    0.5-5 ms, at most BEGIN_WAIT_S. Waiting from 0.1 ms instead, without SQLite's
    handler, was measured and made things worse: bench/README.md.
    """
    _while_locked(db, "BEGIN IMMEDIATE", BEGIN_WAIT_S)


def _while_locked(db: sqlite3.Connection, sql: str, wait_s: float) -> None:
    """Run `sql`, trying again in short, jittered steps while the file is locked."""
    deadline = time.monotonic() + wait_s
    step = 0.0005
    while True:
        try:
            db.execute(sql)
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(step * random.uniform(0.5, 1.5))
        step = min(step * 1.5, 0.005)


@contextmanager
def transaction(
    db: sqlite3.Connection, *, close: bool = True, what: str = "outbox", write: bool = True
) -> Iterator[sqlite3.Connection]:
    """One IMMEDIATE transaction on `db`; sqlite errors -> OutboxUnavailable naming `what`.

    `close=False` keeps the connection for the next transaction of the same thread.
    `write=False`: a read, which in WAL mode neither takes nor waits for the write lock.
    """
    try:
        if write:
            _begin_immediate(db)
        else:
            db.execute("BEGIN")
        yield db
        db.execute("COMMIT")
    except sqlite3.Error as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise OutboxUnavailable(f"{what}: {e}") from None
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        if close:
            db.close()


@contextmanager
def side_transaction(path: str, what: str) -> Iterator[sqlite3.Connection]:
    """A transaction without fsync, on this thread's kept connection to `path`.

    For counters and caches: losing the last write of the limits' counters or the
    token cache to a power cut is harmless. `what` names the store in errors.
    """
    with _SIDE_LOCK:
        conns = _SIDE.get(path)
        if conns is None:
            conns = _SIDE[path] = ThreadConnections(path, 5000, "NORMAL", what=what)
    with conns.transaction() as tx:
        yield tx


_SIDE: dict[str, ThreadConnections] = {}
_SIDE_LOCK = threading.Lock()


class ThreadConnections:
    """One connection per thread (and process), opened once and kept.

    Opening a connection per transaction cost a third of ingest throughput
    (bench/README.md). A kept connection is dropped after any error, and when the
    file at the path is no longer the one it opened (replaced or removed), so a
    broken disk still surfaces as OutboxUnavailable.
    """

    def __init__(
        self, path: str, busy_timeout_ms: int, synchronous: str, *, what: str = "outbox"
    ) -> None:
        self.path = path
        self.what = what
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self._local = threading.local()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        try:
            with transaction(db, close=False, what=self.what, write=write) as tx:
                yield tx
        except OutboxUnavailable:
            self._drop()
            raise

    def _inode(self) -> int | None:
        try:
            return os.stat(self.path).st_ino
        except OSError:
            return None

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        inode = self._inode()
        db: sqlite3.Connection | None = getattr(local, "db", None)
        if db is not None and (local.pid != os.getpid() or local.inode != inode or inode is None):
            self._drop()
            db = None
        if db is None:
            try:
                db = connect(
                    self.path, busy_timeout_ms=self.busy_timeout_ms, synchronous=self.synchronous
                )
            except sqlite3.Error as e:
                raise OutboxUnavailable(f"{self.what}: {e}") from None
            local.db, local.pid, local.inode = db, os.getpid(), self._inode()
        return db

    def _drop(self) -> None:
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None and self._local.pid == os.getpid():
            db.close()


def upgrade_file(path: str, schema: Schema) -> list[str]:
    """Bring one SQLite file up to date under its write lock; what was done, in words."""
    try:
        with transaction(connect(path), what=schema.store) as db:
            return upgrade(db, SQLITE, schema)
    except sqlite3.Error as e:  # connect() itself: a missing folder, a file that isn't one
        raise OutboxUnavailable(f"{schema.store}: {e}") from None


def file_status(path: str, schema: Schema) -> Status:
    """What `upgrade_file` would do to `path`; reads only, and creates nothing."""
    if not os.path.exists(path):
        return status(None, SQLITE, schema, has_table=False)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            has = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
            ).fetchone()
            return status(db, SQLITE, schema, has_table=has is not None)
        finally:
            db.close()
    except sqlite3.Error as e:
        raise OutboxUnavailable(f"{schema.store}: {e}") from None
