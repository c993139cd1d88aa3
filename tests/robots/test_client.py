"""The robot client: its signature, its posts, what DingTalk's answers mean, no secrets out."""

from __future__ import annotations

import base64
import hashlib
import logging
import subprocess
from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from receiver.errors import PermanentError, RetryableError, ThrottledError
from receiver.robots.client import RobotClient, sign, signed_url
from receiver.routing.robots import Robot
from tests.fakes.robot import FakeRobot

SECRET = "SEC1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c"
TOKEN = "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
TS = 1_764_000_000_000  # 2025-11-24T16:00:00Z, in ms: fixed, so the vector is too


def hmac_sha256_by_hand(key: bytes, message: bytes) -> bytes:
    """RFC 2104 from hashlib alone: a second implementation, not the hmac module."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def openssl_hmac(key: str, message: str) -> bytes:
    """A third: openssl's, in another process."""
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", key, "-binary"],
        input=message.encode(), capture_output=True, check=True,
    )  # fmt: skip
    return out.stdout


@pytest.mark.parametrize(
    ("secret", "ts"),
    [(SECRET, TS), ("this is secret", 1_577_836_800_000), ("SEC短密钥", 1)],
)
def test_sign_matches_two_independent_hmacs(secret: str, ts: int) -> None:
    message = f"{ts}\n{secret}"
    by_hand = hmac_sha256_by_hand(secret.encode(), message.encode())
    assert by_hand == openssl_hmac(secret, message)
    expected = base64.b64encode(by_hand).decode()
    got = sign(secret, ts)
    assert unquote(got) == expected
    # URL-encoded: base64's + / = never appear raw in the query
    assert not set(got) & set("+/=")


def test_sign_pinned_vector() -> None:
    """Computed once with `openssl dgst -sha256 -hmac` and kept: a change in sign() shows."""
    msg = f"{TS}\n{SECRET}"
    assert base64.b64encode(openssl_hmac(SECRET, msg)).decode() == unquote(sign(SECRET, TS))
    assert sign("this is secret", 1_577_836_800_000) == PINNED


PINNED = "fFV9t5lBS7KH4%2B5B0JjR99ab%2BAJkXFauQXycgTkS%2Ftc%3D"  # base64 fFV9t5lB…/tc=


def test_signed_url_appends_timestamp_and_sign() -> None:
    robot = Robot("db", f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}", SECRET)
    url = signed_url(robot, TS)
    assert url == robot.webhook + f"&timestamp={TS}&sign={sign(SECRET, TS)}"
    assert signed_url(Robot("db", robot.webhook), TS) == robot.webhook


@pytest.fixture
def fake() -> Iterator[FakeRobot]:
    f = FakeRobot().start()
    yield f
    f.stop()


BODY = {"msgtype": "markdown", "markdown": {"title": "t", "text": "hello @u1"},
        "at": {"atUserIds": ["u1"], "isAtAll": False}}  # fmt: skip


def test_a_signed_post_is_accepted_by_the_fake(fake: FakeRobot) -> None:
    robot = Robot("db", fake.add(TOKEN, secret=SECRET), SECRET)
    RobotClient(timeout=5).post(robot, BODY)
    (post,) = fake.delivered()
    assert post.body == BODY
    assert set(post.query) == {"access_token", "timestamp", "sign"}


def test_a_wrong_secret_is_a_permanent_error_with_a_hint(fake: FakeRobot) -> None:
    robot = Robot("db", fake.add(TOKEN, secret=SECRET), "SECwrong")
    with pytest.raises(PermanentError) as e:
        RobotClient(timeout=5).post(robot, BODY)
    assert e.value.errcode == 310000
    assert "加签" in str(e.value) and "SEC" in str(e.value) and "关键词" not in str(e.value)


@pytest.mark.parametrize(
    ("reply", "status", "kind", "words"),
    [
        ({"errcode": 310000, "errmsg": "keywords not in content"}, 200, PermanentError, "关键词"),
        ({"errcode": 310000, "errmsg": "ip X not in whitelist"}, 200, PermanentError, "IP"),
        ({"errcode": 300001, "errmsg": "token is not exist"}, 200, PermanentError, "Webhook URL"),
        ({"errcode": 410100, "errmsg": "send too fast"}, 200, ThrottledError, "10 minutes"),
        ({"errcode": -1, "errmsg": "busy"}, 200, RetryableError, "busy"),
        ({"errcode": 400105, "errmsg": "unsupported msgtype"}, 200, PermanentError, "400105"),
        ({"errcode": 0}, 500, RetryableError, "HTTP 500"),
        ({"errcode": 0}, 429, RetryableError, "HTTP 429"),
        ({"errcode": 0}, 404, PermanentError, "HTTP 404"),
    ],
)
def test_each_answer_is_classified(
    fake: FakeRobot, reply: dict[str, object], status: int, kind: type, words: str
) -> None:
    robot = Robot("db", fake.add(TOKEN))
    fake.fail(status=status, body=reply)
    with pytest.raises(kind) as e:
        RobotClient(timeout=5).post(robot, BODY)
    assert type(e.value) is kind and words in str(e.value)
    if kind is ThrottledError:
        assert isinstance(e.value, ThrottledError) and e.value.retry_after == 600


def test_an_unknown_token_is_300001(fake: FakeRobot) -> None:
    fake.add(TOKEN)
    robot = Robot("db", f"{fake.base}/robot/send?access_token=nope")
    with pytest.raises(PermanentError) as e:
        RobotClient(timeout=5).post(robot, BODY)
    assert e.value.errcode == 300001


def test_network_errors_are_retryable_and_never_show_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    robot = Robot("db", f"http://127.0.0.1:9/robot/send?access_token={TOKEN}", SECRET)
    with pytest.raises(RetryableError) as e:
        RobotClient(timeout=2).post(robot, BODY)
    assert str(e.value) == "robot db: ConnectionError"
    for text in (str(e.value), repr(e.value), caplog.text):
        assert TOKEN not in text and SECRET not in text and "sign=" not in text


def test_secrets_never_reach_errors_or_logs(
    fake: FakeRobot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs URLs at DEBUG
    robot = Robot("db", fake.add(TOKEN, secret=SECRET), SECRET)
    fake.fail(body={"errcode": 310000, "errmsg": f"sign not match for {TOKEN} {SECRET}"})
    with pytest.raises(PermanentError) as e:
        RobotClient(timeout=5).post(robot, BODY)
    RobotClient(timeout=5).post(robot, BODY)
    for text in (str(e.value), repr(robot), str(robot), caplog.text):
        assert TOKEN not in text and SECRET not in text
    assert "access_token=<redacted>" in repr(robot) and "secret='<set>'" in repr(robot)


def test_a_body_over_20000_bytes_is_refused_before_posting(fake: FakeRobot) -> None:
    robot = Robot("db", fake.add(TOKEN))
    big = {"msgtype": "text", "text": {"content": "x" * 20_001}}
    with pytest.raises(PermanentError, match="over 20000"):
        RobotClient(timeout=5).post(robot, big)
    assert fake.posts == []


def test_docs_list_every_robot_errcode() -> None:
    from receiver.robots.client import ERRCODES
    from tests.conftest import ROOT

    doc = (ROOT / "docs/robots.md").read_text(encoding="utf-8")
    assert all(str(code) in doc for code in ERRCODES)
