"""The DingTalk client against the fake DingTalk: each sdk flaw we correct has a test."""

from __future__ import annotations

import logging
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from dingtalk.storage.kvstorage import KvStorage

from receiver.dingtalk.client import ASYNCSEND_PATH, TOKEN_MEMO_S, Client, classify, redact
from receiver.dingtalk.tokenstore import SqliteKv
from receiver.directory.sync import DirectorySync
from receiver.errors import PermanentError, RetryableError, TokenError
from receiver.settings import Settings
from tests.conftest import ROOT
from tests.fakes.dingtalk import APP_SECRET, FakeDingTalk

MSG: dict[str, Any] = {
    "msgtype": "markdown",
    "markdown": {"title": "t", "text": "数据库主库延迟过高" * 120},
}


def test_async_send_posts_json_body_not_query(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    users = [f"user{i:03d}" for i in range(100)]
    results = Client(live_settings).async_send(users, MSG)
    (req,) = fake_dingtalk.sends()
    assert req.method == "POST" and req.path == ASYNCSEND_PATH
    assert set(req.query) == {"access_token"}  # nothing else travels in the URL
    assert req.headers["Content-Type"] == "application/json"
    assert req.body == {
        "agent_id": 424242,
        "msg": MSG,
        "to_all_user": "false",
        "userid_list": ",".join(users),
    }
    assert [r.task_id for r in results] == [1001]
    assert results[0].request_id == "req-1001"


def test_async_send_splits_into_calls_of_100(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    users = [f"u{i}" for i in range(250)] + ["u0"]  # duplicates are sent once
    results = Client(live_settings).async_send(users, MSG, dept_id_list=[7])
    sizes = [len(r.body["userid_list"].split(",")) for r in fake_dingtalk.sends() if r.body]
    assert sizes == [100, 100, 50]
    assert [r.task_id for r in results] == [1001, 1002, 1003]
    assert fake_dingtalk.sends()[0].body["dept_id_list"] == "7"  # type: ignore[index]


def test_token_is_fetched_once_and_cached(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    client = Client(live_settings)
    client.async_send(["a"], MSG)
    client.async_send(["b"], MSG)
    assert [r.path for r in fake_dingtalk.requests].count("/gettoken") == 1


@pytest.mark.parametrize(
    "reply",
    [
        {"errcode": 88, "sub_code": "40014", "errmsg": "不合法的access_token"},
        {"errcode": 88, "sub_code": "42001", "errmsg": "access_token超时"},
        {"errcode": 40014, "errmsg": "invalid token"},
        {"errcode": 42001, "errmsg": "expired"},
        {"errcode": 40001, "errmsg": "bad credential"},
        {"errcode": 33001, "errmsg": "bad corp"},
    ],
)
def test_bad_token_refreshes_once_then_succeeds(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, reply: dict[str, Any]
) -> None:
    client = Client(live_settings)
    client.async_send(["a"], MSG)
    fake_dingtalk.fail("asyncsend_v2", times=1, body=reply)
    client.async_send(["b"], MSG)
    paths = [r.path for r in fake_dingtalk.requests]
    assert paths.count("/gettoken") == 2
    assert paths.count(ASYNCSEND_PATH) == 3


def test_expired_token_from_server_refreshes(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    client = Client(live_settings)
    client.async_send(["a"], MSG)
    fake_dingtalk.invalidate_tokens()  # the real 88/40014 reply, not a scripted one
    client.async_send(["b"], MSG)
    assert len(fake_dingtalk.sends()) == 3


def test_persistent_token_error_fails_after_one_refresh(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    fake_dingtalk.fail(
        "asyncsend_v2", times=100, body={"errcode": 88, "sub_code": "40014", "errmsg": "bad"}
    )
    with pytest.raises(TokenError):
        Client(live_settings).async_send(["a"], MSG)
    assert len(fake_dingtalk.sends()) == 2  # one try, one refresh, no recursion


def test_wrong_secret_is_bounded(live_settings: Settings, fake_dingtalk: FakeDingTalk) -> None:
    with pytest.raises(TokenError) as info:
        Client(live_settings.with_(app_secret="wrong")).async_send(["a"], MSG)
    assert info.value.errcode == 40089
    assert len(fake_dingtalk.requests) == 1


def test_every_call_has_a_timeout(live_settings: Settings, fake_dingtalk: FakeDingTalk) -> None:
    fake_dingtalk.delay = 3
    started = time.monotonic()
    with pytest.raises(RetryableError, match="timed out"):
        Client(live_settings.with_(http_timeout=0.5)).async_send(["a"], MSG)
    assert time.monotonic() - started < 2.5


def test_each_client_has_its_own_session(live_settings: Settings) -> None:
    a, b = Client(live_settings), Client(live_settings)
    assert a._http is not b._http


def test_a_client_keeps_its_connection_alive(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    client = Client(live_settings)
    for _ in range(3):
        client.async_send(["a"], MSG)
    peers = {r.peer for r in fake_dingtalk.requests}
    assert len(fake_dingtalk.requests) == 4 and len(peers) == 1  # gettoken, then 3 sends


def test_a_connection_the_server_closed_while_idle_is_opened_again(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    client = Client(live_settings)
    client.async_send(["a"], MSG)
    fake_dingtalk.drop_connections()
    time.sleep(0.05)  # let the close reach the client's socket
    client.async_send(["b"], MSG)  # no error: the kept connection is replaced
    assert len(fake_dingtalk.delivered()) == 2
    assert len({r.peer for r in fake_dingtalk.requests}) == 2


def test_a_kept_connection_closed_without_a_reply_is_tried_again_once(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    client = Client(live_settings)
    client.async_send(["a"], MSG)
    fake_dingtalk.hang_ups = 1  # the server closes the kept connection as the call arrives
    client.async_send(["b"], MSG)
    assert len(fake_dingtalk.delivered()) == 2
    fake_dingtalk.hang_ups = 2  # a new connection closed too: that is an error
    with pytest.raises(RetryableError, match="ConnectionError to 127.0.0.1"):
        client.async_send(["c"], MSG)
    assert len(fake_dingtalk.delivered()) == 2


def test_calls_read_the_token_cache_once_every_few_seconds(
    live_settings: Settings,
    fake_dingtalk: FakeDingTalk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []

    class CountingKv(SqliteKv):
        def get(self, key: str) -> str | None:
            reads.append(key)
            return super().get(key)

    storage = KvStorage(CountingKv(str(tmp_path)), prefix="t")
    Client(live_settings, storage=storage).async_send(["a"], MSG)  # fetches the token
    reads.clear()
    client = Client(live_settings, storage=storage)  # another process, say
    clock = [time.monotonic()]
    monkeypatch.setattr("receiver.dingtalk.client.time.monotonic", lambda: clock[0])
    for _ in range(3):
        client.async_send(["a"], MSG)
    assert len(reads) == 1
    clock[0] += TOKEN_MEMO_S
    client.async_send(["a"], MSG)
    assert len(reads) == 2
    assert len(fake_dingtalk.delivered()) == 5


def test_environment_proxy_is_still_honoured(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests reads HTTP_PROXY itself; the client reads it once per host, not per call.
    monkeypatch.setenv("HTTP_PROXY", fake_dingtalk.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = Client(live_settings.with_(api_base="http://oapi.dingtalk.invalid/"))
    client.async_send(["a"], MSG)
    client.async_send(["a"], MSG)
    assert [r.headers["Host"] for r in fake_dingtalk.requests] == ["oapi.dingtalk.invalid"] * 3


def test_proxy_hook_routes_every_call_through_the_proxy(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    # The fake plays the proxy: the API host below does not exist, so only the proxy can answer.
    settings = live_settings.with_(
        api_base="http://oapi.dingtalk.invalid/", proxy=fake_dingtalk.url
    )
    Client(settings).async_send(["a"], MSG)
    assert [r.headers["Host"] for r in fake_dingtalk.requests] == ["oapi.dingtalk.invalid"] * 2


@pytest.mark.parametrize(
    ("reply", "status", "error"),
    [
        ({"errcode": -1, "errmsg": "系统繁忙"}, 200, RetryableError),
        ({"errcode": 90002, "errmsg": "限流"}, 200, RetryableError),
        ({"errcode": 1430003, "errmsg": "平台保护"}, 200, RetryableError),
        ({"punish": "deny"}, 200, RetryableError),
        (b"<html>busy</html>", 200, RetryableError),
        ({"errcode": 0}, 500, RetryableError),
        ({"errcode": 0}, 429, RetryableError),
        ({"errcode": 40035, "errmsg": "缺少参数"}, 200, PermanentError),
        (
            {"errcode": 60020, "errmsg": "访问ip不在白名单之中 request ip=1.2.3.4"},
            200,
            PermanentError,
        ),
        ({"errcode": 60011, "errmsg": "no permission"}, 200, PermanentError),
    ],
)
def test_failures_are_classified(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, reply: Any, status: int, error: type
) -> None:
    fake_dingtalk.fail("asyncsend_v2", times=1, status=status, body=reply)
    with pytest.raises(error):
        Client(live_settings).async_send(["a"], MSG)


def test_whitelist_error_tells_the_operator_what_to_do() -> None:
    err = classify(60020, "访问ip不在白名单之中")
    assert isinstance(err, PermanentError) and "DINGTALK_PROXY" in str(err)


def test_secrets_never_reach_logs_or_errors(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = Client(live_settings)
    client.async_send(["a"], MSG)
    token = client.cache.access_token.get()
    assert token
    errors: list[str] = []
    for body, status in [({"errcode": 40035, "errmsg": "bad"}, 200), ({}, 502)]:
        fake_dingtalk.fail("asyncsend_v2", times=1, status=status, body=body)
        with pytest.raises(PermanentError if status == 200 else RetryableError) as info:
            client.async_send(["a"], MSG)
        errors += [str(info.value), repr(info.value)]
    # The sdk's own logger prints URLs with the token; our filter scrubs it.
    logging.getLogger("dingtalk.client.base").error(
        "【请求地址】: %s", f"{fake_dingtalk.url}x?access_token={token}&appsecret={APP_SECRET}"
    )
    text = caplog.text + "\n".join(errors) + repr(client) + repr(live_settings)
    assert "access_token=<redacted>" in caplog.text
    assert token not in text and APP_SECRET not in text


def test_redact() -> None:
    assert redact("/x?access_token=abc&appsecret=def&a=1") == (
        "/x?access_token=<redacted>&appsecret=<redacted>&a=1"
    )


def test_sdk_is_installed_with_cryptography() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("dingtalk-sdk[cryptography]") for d in deps)
    import dingtalk  # noqa: F401  (fails without cryptography)


# -- replies of an unexpected shape become classified errors, not crashes --------------

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


@pytest.mark.parametrize(
    ("api_base", "proxy", "expected"),
    [
        ("http://127.0.0.1:{port}/", None,
         "ConnectionError to 127.0.0.1:{port}: connection refused"),
        ("http://oapi.dingtalk.invalid/", None,
         "ConnectionError to oapi.dingtalk.invalid:80: cannot resolve the host name ("),
        ("https://oapi.dingtalk.com/", "http://user:pw@127.0.0.1:{port}",
         "ProxyError to oapi.dingtalk.com:443 via proxy 127.0.0.1:{port}: connection refused"),
        ("http://oapi.dingtalk.com/", "http://user:pw@127.0.0.1:{port}",
         "ProxyError to oapi.dingtalk.com:80 via proxy 127.0.0.1:{port}: connection refused"),
        ("https://127.0.0.1:{port}/", None,
         "ConnectionError to 127.0.0.1:{port}: connection refused"),
        # a proxy spoken to over TLS is left to requests, with the same words
        ("https://oapi.dingtalk.com/", "https://user:pw@127.0.0.1:{port}",
         "ProxyError to oapi.dingtalk.com:443 via proxy 127.0.0.1:{port}: connection refused"),
    ],
)  # fmt: skip
def test_a_network_failure_names_the_host_and_the_reason(
    live_settings: Settings, api_base: str, proxy: str | None, expected: str
) -> None:
    from tests.procs import free_port

    port = free_port()  # nothing listens on it
    settings = live_settings.with_(
        api_base=api_base.format(port=port), proxy=proxy and proxy.format(port=port)
    )
    with pytest.raises(RetryableError) as e:
        Client(settings).get_access_token()
    assert str(e.value).startswith(f"DingTalk /gettoken: {expected.format(port=port)}")
    assert APP_SECRET not in str(e.value) and "pw" not in str(e.value)
