"""The synced directory in PostgreSQL (RECEIVER_DATABASE_URL): one copy for every replica.

The same queries as `DirectoryStore`, on the shared database; a sync replaces every
row in one transaction, as on SQLite, so a replica reads the old directory or the new
one. `sync_lock()` lets one replica sync at a time: the others skip the round.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from receiver.directory.store import DIRECTORY_SCHEMA, Department, DirectoryStore, User
from receiver.errors import OutboxUnavailable, ReceiverError
from receiver.storage.postgres import database, upgrade_database


class PgDirectoryStore(DirectoryStore):
    INSTR = "strpos"

    def __init__(self, data_dir: str, database_url: str) -> None:
        super().__init__(data_dir)
        self._pg = database(database_url)
        self._upgraded = False

    def __repr__(self) -> str:  # not the URL: it may hold a password
        return "<PgDirectoryStore>"

    @contextmanager
    def _db(self, *, write: bool = False) -> Iterator[Any]:
        try:
            if not self._upgraded:
                upgrade_database(self._pg, DIRECTORY_SCHEMA)
                self._upgraded = True
            with self._pg.transaction(write=write, what="directory store") as db:
                yield db
        except OutboxUnavailable as e:  # the database: a ReceiverError, as on SQLite
            raise ReceiverError(str(e)) from None

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._db() as db:
            return list(db.execute(sql, tuple(args)).fetchall())

    def replace(
        self, departments: Iterable[Department], users: Iterable[User], *, now: float | None = None
    ) -> None:
        with self._db(write=True) as db:
            self._write(db, departments, users, now)

    def sync_lock(self) -> AbstractContextManager[bool]:
        return self._pg.held("directory sync", wait=False)


def open_store(data_dir: str, database_url: str | None = None) -> DirectoryStore:
    """The directory of these settings: PostgreSQL's with a URL, else the SQLite file."""
    return PgDirectoryStore(data_dir, database_url) if database_url else DirectoryStore(data_dir)
