"""The access-token cache shared by every process on the host.

dingtalk-sdk's `KvStorage` takes any object with get/set(key, value, ttl)/delete;
`SqliteKv` is one, backed by `tokens.sqlite3` in RECEIVER_DATA_DIR (mode 0600: it
holds live tokens). `lock()` serialises fetches across processes, so a fleet of
workers that finds the cache empty fetches one token, not one each.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from receiver.storage.migrations import SQLITE, Schema, upgrade
from receiver.storage.pgconn import PgConnection
from receiver.storage.postgres import database, upgrade_database
from receiver.storage.sqlite import side_transaction

TOKENS_SCHEMA = Schema(
    "tokens",
    tables=("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " expires_at REAL)",),
)  # fmt: skip


class _Kv:
    """get/set/delete over the `kv` table, the same SQL on either engine (`_tx`)."""

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def get(self, key: str) -> str | None:
        with self._tx() as db:
            row = db.execute(
                "SELECT value FROM kv WHERE key=? AND (expires_at IS NULL OR expires_at>?)",
                (key, time.time()),
            ).fetchone()
        return str(row["value"]) if row else None

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        expires = time.time() + ttl if ttl else None
        with self._tx() as db:
            db.execute(
                "INSERT INTO kv (key, value, expires_at) VALUES (?,?,?) ON CONFLICT (key)"
                " DO UPDATE SET value=excluded.value, expires_at=excluded.expires_at",
                (key, value, expires),
            )

    def delete(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM kv WHERE key=?", (key,))


class SqliteKv(_Kv):
    def __init__(self, data_dir: str) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "tokens.sqlite3")
        self.lock_path = self.path + ".lock"
        for p in (self.path, self.lock_path):
            os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._tx() as db:
            upgrade(db, SQLITE, TOKENS_SCHEMA)

    def __repr__(self) -> str:  # never the values
        return f"<SqliteKv {self.path}>"

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return side_transaction(self.path, "token store")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock across processes (flock), held while a token is fetched."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class PgKv(_Kv):
    """The token cache in PostgreSQL (RECEIVER_DATABASE_URL), shared by every replica.

    `lock()` is an advisory lock held while a token is fetched: one fetch at a time
    across replicas, not only across the processes of one host.
    """

    def __init__(self, database_url: str) -> None:
        self._db = database(database_url)
        upgrade_database(self._db, TOKENS_SCHEMA)

    def __repr__(self) -> str:  # never the values, nor the URL
        return "<PgKv>"

    def _tx(self) -> AbstractContextManager[PgConnection]:
        return self._db.transaction(what="token store")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a token is fetched: one refresh at a time across replicas."""
        with self._db.held("token refresh"):
            yield
