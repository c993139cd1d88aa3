"""The token cache shared by every process on the host, with the real Client and fake DingTalk."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from receiver.dingtalk.client import Client, shared_storage
from receiver.dingtalk.tokenstore import PgKv, SqliteKv
from receiver.settings import Settings
from tests.conftest import Engine
from tests.fakes.dingtalk import FakeDingTalk

MSG = {"msgtype": "text", "text": {"content": "x"}}


def gettokens(fake: FakeDingTalk) -> int:
    return [r.path for r in fake.requests].count("/gettoken")


def test_get_set_ttl_delete(tmp_path: Path) -> None:
    kv = SqliteKv(str(tmp_path))
    kv.set("k", "v", 60)
    kv.set("gone", "v", 0.05)
    assert kv.get("k") == "v"
    time.sleep(0.1)
    assert kv.get("gone") is None
    kv.delete("k")
    assert kv.get("k") is None
    assert stat.S_IMODE(os.stat(kv.path).st_mode) == 0o600  # it holds live tokens


def test_the_token_cache_in_postgresql(postgres_url: str) -> None:
    kv = PgKv(postgres_url)
    kv.set("k", "v", 60)
    kv.set("gone", "v", 0.05)
    assert kv.get("k") == "v" and PgKv(postgres_url).get("k") == "v"  # another replica
    time.sleep(0.1)
    assert kv.get("gone") is None
    kv.delete("k")
    assert kv.get("k") is None
    assert "postgres" not in repr(kv)  # nor the URL, which may hold a password


def test_clients_share_one_token(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, engine: Engine
) -> None:
    """Eight processes (or replicas, on PostgreSQL) find the cache empty: one fetch."""
    shared = (live_settings.data_dir, engine.database_url)
    clients = [Client(live_settings, storage=shared_storage(*shared)) for _ in range(8)]
    threads = [threading.Thread(target=c.async_send, args=(["a"], MSG)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_dingtalk.delivered()) == 8
    assert gettokens(fake_dingtalk) == 1  # a fleet fetches one token, not one each


@pytest.mark.parametrize(
    ("expires_in", "kept"),
    [(7200, 6900), (301, 150), (40, 20)],  # 300 s short of its expiry, or half its life
)
def test_token_is_refreshed_before_it_expires(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, expires_in: int, kept: int
) -> None:
    fake_dingtalk.expires_in = expires_in
    client = Client(live_settings, storage=shared_storage(live_settings.data_dir))
    client.async_send(["a"], MSG)
    kv = SqliteKv(live_settings.data_dir)
    import sqlite3

    db = sqlite3.connect(kv.path)
    (expires_at,) = db.execute("SELECT expires_at FROM kv").fetchone()
    db.close()
    assert kept - 5 < expires_at - time.time() <= kept


def test_a_refresh_by_one_process_is_not_undone_by_another(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    a = Client(live_settings, storage=shared_storage(live_settings.data_dir))
    b = Client(live_settings, storage=shared_storage(live_settings.data_dir))
    a.async_send(["a"], MSG)
    fake_dingtalk.invalidate_tokens()
    a.async_send(["a"], MSG)  # a refreshes
    b.async_send(["b"], MSG)  # b finds the fresh token
    assert gettokens(fake_dingtalk) == 2
    assert len(fake_dingtalk.delivered()) == 3


def test_a_token_kept_in_memory_that_dingtalk_refuses_is_read_again(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    """b keeps the token it read; a refreshes it: b's next call, refused, reads a's."""
    a = Client(live_settings, storage=shared_storage(live_settings.data_dir))
    b = Client(live_settings, storage=shared_storage(live_settings.data_dir))
    a.async_send(["a"], MSG)
    b.async_send(["b"], MSG)
    fake_dingtalk.invalidate_tokens()
    a.async_send(["a"], MSG)  # a refreshes
    b.async_send(["b"], MSG)  # b's kept token is refused: it reads the fresh one
    assert gettokens(fake_dingtalk) == 2
    assert len(fake_dingtalk.delivered()) == 4
