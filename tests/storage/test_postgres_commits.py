"""Which commits wait for PostgreSQL's disk: the accept path's do, the delivery process's don't.

As on SQLite (FULL for the accept path, NORMAL in the delivery process): a 2xx means
the alert is on disk, while a delivery state change lost to a crash of the database
server is redone, at least once. Without this every claim, send record and limits
count waited for a WAL flush, and a drain on a durable PostgreSQL went at 48
webhooks/s (bench row 8).
"""

from __future__ import annotations

from typing import Any

from receiver.delivery.outbox import Outbox
from receiver.delivery.process import make_worker
from receiver.settings import Settings

SETTING = "SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'"


def synchronous_commit(box: Outbox) -> tuple[Any, ...]:
    with box._db.transaction() as tx:
        row = tx.execute(SETTING).fetchone()
    assert row is not None
    return tuple(row)


def test_the_accept_path_commits_wait_for_the_disk(settings: Settings, postgres_url: str) -> None:
    box = Outbox(settings.data_dir, database_url=postgres_url)  # as a web worker opens it
    setting, source = synchronous_commit(box)
    assert source != "session"  # the server's own setting: on, unless the operator said off


def test_the_delivery_process_commits_asynchronously(settings: Settings, postgres_url: str) -> None:
    worker = make_worker(settings.with_(database_url=postgres_url))
    assert synchronous_commit(worker.outbox) == ("off", "session")
