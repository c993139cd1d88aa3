"""Review findings: replies of an unexpected shape become classified errors, not crashes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from receiver.dingtalk.client import Client
from receiver.directory.sync import DirectorySync
from receiver.errors import RetryableError
from receiver.settings import Settings
from tests.fakes.dingtalk import FakeDingTalk

MSG: dict[str, Any] = {"msgtype": "text", "text": {"content": "x"}}


def test_an_errcode_that_is_not_a_number_is_a_retryable_error(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    fake_dingtalk.fail("asyncsend_v2", times=1, body={"errcode": "oops", "errmsg": "?"})
    with pytest.raises(RetryableError, match="unexpected reply"):
        Client(live_settings).async_send(["a"], MSG)


@pytest.mark.parametrize(
    "reply",
    [
        {"errcode": 0},
        {"errcode": 0, "access_token": None, "expires_in": 7200},
        {"errcode": 0, "access_token": "", "expires_in": 7200},
        {"errcode": 0, "access_token": "tok-x", "expires_in": "soon"},
    ],
)
def test_a_gettoken_reply_of_unexpected_shape_is_retryable_and_not_cached(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, reply: dict[str, Any]
) -> None:
    client = Client(live_settings)
    fake_dingtalk.fail("gettoken", times=1, body=reply)
    with pytest.raises(RetryableError, match="unexpected reply"):
        client.async_send(["a"], MSG)
    assert client.cache.access_token.get() is None  # nothing half-read stays cached
    client.async_send(["a"], MSG)  # the next attempt fetches a real token
    assert len(fake_dingtalk.delivered()) == 1


def test_maybe_sync_never_raises_when_the_directory_cannot_be_read(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    # The sync thread calls maybe_sync in a loop; an exception would end the thread,
    # and with it every later sync, silently.
    syncer = DirectorySync(
        live_settings.with_(directory_sync_interval=3600), lambda: Client(live_settings)
    )
    os.makedirs(live_settings.data_dir, exist_ok=True)
    with open(syncer.store.path, "wb") as f:
        f.write(b"this is not an SQLite database" * 100)
    assert syncer.maybe_sync() is False
    assert fake_dingtalk.requests == []  # nothing fetched that could not be stored
