"""The pool's check of a connection before each transaction (a round trip): the accept path
always checks; the delivery process trusts a connection it used within the last second,
and a server that went away meanwhile costs it one failed transaction, not more."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from receiver.errors import OutboxUnavailable
from receiver.storage.postgres import PgDatabase


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = ConnectionPool.check_connection

    def counted(conn: psycopg.Connection) -> None:  # type: ignore[type-arg]
        seen.append(1)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    return seen


def run(db: PgDatabase, n: int) -> None:
    for _ in range(n):
        with db.transaction() as tx:
            tx.execute("SELECT 1")


def test_every_transaction_is_checked_by_default(postgres_url: str, checks: list[int]) -> None:
    db = PgDatabase(postgres_url, max_size=1)
    try:
        run(db, 5)
        assert len(checks) == 5
    finally:
        db.close()


def test_the_delivery_process_trusts_a_connection_it_just_used(
    postgres_url: str, checks: list[int]
) -> None:
    db = PgDatabase(postgres_url, max_size=1)
    db.trust_recent_connections(60.0)
    try:
        run(db, 5)
        assert len(checks) == 1  # the first use only
        with psycopg.connect(postgres_url, autocommit=True) as admin:  # the server drops it
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(OutboxUnavailable):
            run(db, 1)
        run(db, 3)  # the broken one was dropped: a new connection, checked once
        assert len(checks) == 2
        db.trust_recent_connections(0.0)
        run(db, 2)
        assert len(checks) == 4
    finally:
        db.close()
