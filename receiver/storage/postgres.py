"""The PostgreSQL engine (RECEIVER_DATABASE_URL=postgresql://…): one queue for several replicas.

The stores keep one set of queries, written as SQLite takes them; `pgconn.PgConnection`
answers the part of sqlite3's connection they use.

Every psycopg error, and a pool that cannot hand out a connection in time (the
database is down), becomes OutboxUnavailable naming the store: webhooks answer 503,
the delivery worker waits and tries again. Connections come from one pool per process
and URL, opened in the background so a process starts while the database is down.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from receiver.errors import OutboxUnavailable
from receiver.storage.migrations import Schema, Status, status, upgrade
from receiver.storage.pgconn import POSTGRES, PgConnection, lock_key

CONNECT_TIMEOUT_S = 3.0  # waiting for a pooled connection: then 503, not a hung webhook


class PgDatabase:
    """A pool of connections to one database, for the processes' threads."""

    dialect = POSTGRES

    def __init__(self, url: str, *, max_size: int = 8) -> None:
        self.url = url
        self.max_size = max_size
        self._pool: ConnectionPool[Any] | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.synchronous_commit = True
        self.fresh_s = 0.0  # see trust_recent_connections
        self._used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def commit_asynchronously(self) -> None:
        """This process's commits return before PostgreSQL has flushed them to disk.

        The delivery process's, as SQLite's `synchronous=NORMAL` there: what a crash of
        the database server loses (its last ~0.6 s of state changes) is redone, at
        least once. The accept path never calls this: its 2xx means on disk. Call it
        before the first transaction; connections opened earlier stay synchronous.
        """
        self.synchronous_commit = False

    def trust_recent_connections(self, seconds: float = 1.0) -> None:
        """Hand out a connection whose last transaction ended less than `seconds` ago
        without the pool's check (a round trip before every transaction).

        The delivery process's: it runs ~10 short transactions a webhook, and the check
        was a tenth of its CPU on PostgreSQL. If the server went away within that second,
        the transaction fails (OutboxUnavailable, which the worker waits out and retries,
        and owes a send's record until then), and the pool drops that connection. The
        accept path keeps the check: a webhook would get a 503 for it.
        """
        self.fresh_s = seconds

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        if self.fresh_s and time.monotonic() - self._used.get(conn, -1e9) < self.fresh_s:
            return
        ConnectionPool.check_connection(conn)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        if not self.synchronous_commit:
            conn.execute("SET synchronous_commit TO off")

    def __repr__(self) -> str:  # the URL may hold a password
        return "<PgDatabase>"

    def _get_pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():  # a forked child opens its own
                self._pool = ConnectionPool(
                    self.url, min_size=1, max_size=self.max_size, open=False,
                    kwargs={"autocommit": True, "connect_timeout": 3},
                    check=self._check, timeout=CONNECT_TIMEOUT_S,
                    configure=self._configure, name="receiver",
                )  # fmt: skip
                self._pool.open(wait=False)
                self._pid = os.getpid()
            return self._pool

    @contextmanager
    def transaction(self, *, write: bool = True, what: str = "database") -> Iterator[PgConnection]:
        """One transaction; any database error (or none to be had) -> OutboxUnavailable."""
        try:
            with self._get_pool().connection() as conn:
                with conn.transaction():
                    yield PgConnection(conn)
                self._used[conn] = time.monotonic()
        except PoolTimeout:  # the pool only says it waited: ask the server why
            raise OutboxUnavailable(f"{what}: PostgreSQL unreachable: {self._why()}") from None
        except psycopg.Error as e:
            raise OutboxUnavailable(f"{what}: {_short(e)}") from None

    def _why(self) -> str:
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error as e:
            return _short(e)
        return f"no connection free within {CONNECT_TIMEOUT_S:.0f}s"

    @contextmanager
    def held(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """The advisory lock `name`, on a connection of its own for as long as it is held.

        Not a pooled one: holders that wait would otherwise take every connection of the
        pool, and the holder could not get one for its own work. Yields False when
        `wait` is off and another process holds it.
        """
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
        except psycopg.Error as e:
            raise OutboxUnavailable(f"lock {name}: {_short(e)}") from None
        try:
            take = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            row = conn.execute(f"SELECT {take}(%s)", (lock_key(name),)).fetchone()
            got = wait or bool(row and row[0])
        except psycopg.Error as e:
            conn.close()
            raise OutboxUnavailable(f"lock {name}: {_short(e)}") from None
        try:
            yield got
        finally:
            conn.close()  # the session's locks go with it

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None


def _short(e: BaseException) -> str:
    """The first line of a psycopg error: no query text, no parameters."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


_DATABASES: dict[str, PgDatabase] = {}
_DATABASES_LOCK = threading.Lock()


def database(url: str) -> PgDatabase:
    """The one pool of this process for `url`: every store shares it."""
    with _DATABASES_LOCK:
        db = _DATABASES.get(url)
        if db is None:
            db = _DATABASES[url] = PgDatabase(url)
        return db


def close_database(url: str) -> None:
    """Close this process's pool for `url` (tests, and a process that is done with it)."""
    with _DATABASES_LOCK:
        db = _DATABASES.pop(url, None)
    if db is not None:
        db.close()


def upgrade_database(db: PgDatabase, schema: Schema) -> list[str]:
    """Bring `schema`'s tables up to date under an advisory lock: one replica at a time."""
    with db.transaction(what=schema.store) as tx:
        tx.lock("migrate")
        return upgrade(tx, POSTGRES, schema)


def database_status(db: PgDatabase, schema: Schema) -> Status:
    with db.transaction(write=False, what=schema.store) as tx:
        row = tx.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        return status(tx, POSTGRES, schema, has_table=bool(row and row[0]))
