"""A transaction for a store of counters (the send limits, the robot limits), on either
engine: SQLite's side transaction, whose BEGIN IMMEDIATE makes each read-then-write
atomic, or a PostgreSQL transaction under an advisory lock named for the store, so
that replicas count one at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import cast

from receiver.storage.pgconn import PgConnection
from receiver.storage.postgres import PgDatabase
from receiver.storage.sqlite import side_transaction


def counting(
    pg: PgDatabase | None, path: str, what: str, *, lock: bool = True
) -> AbstractContextManager[sqlite3.Connection]:
    """A transaction on PostgreSQL when `pg` is given, else on the SQLite file `path`.

    `lock=False`: no advisory lock on PostgreSQL (one round trip less), for writes that
    are atomic row by row there (an upsert that returns the new count, say).
    """
    if pg is not None:  # PgConnection answers the sqlite3 subset the counters use
        return cast(AbstractContextManager[sqlite3.Connection], _locked(pg, what, lock))
    return side_transaction(path, what)


@contextmanager
def _locked(pg: PgDatabase, what: str, lock: bool = True) -> Iterator[PgConnection]:
    with pg.transaction(what=what) as db:
        if lock:
            db.lock(what)
        yield db
