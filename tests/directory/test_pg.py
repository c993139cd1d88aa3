"""The directory on PostgreSQL: one sync at a time across replicas."""

from __future__ import annotations

from pathlib import Path

from receiver.directory.pg import PgDirectoryStore
from receiver.directory.sync import DirectorySync
from receiver.settings import Settings


def test_one_directory_sync_at_a_time(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), app_key="k", app_secret="s", agent_id="1",
                        database_url=postgres_url)  # fmt: skip
    connects: list[str] = []

    def connect() -> object:
        connects.append("connect")
        raise AssertionError("a replica synced while another held the lock")

    mine, theirs = (
        PgDirectoryStore(str(tmp_path), postgres_url),
        PgDirectoryStore(str(tmp_path), postgres_url),
    )
    with mine.sync_lock() as got:  # replica A is syncing
        assert got
        with theirs.sync_lock() as other:
            assert not other  # B may not, and does not wait for it either
        assert DirectorySync(settings, connect, store=theirs).maybe_sync(now=1e9) is False
    assert connects == []
    with theirs.sync_lock() as other:  # A is done: B may
        assert other
