"""What a failed send means (receiver.delivery.failures), the shared pause, and quiet logs."""

from __future__ import annotations

import logging

import pytest

from receiver.delivery.failures import Kind, classify
from receiver.delivery.settle import RepeatLimiter
from receiver.dingtalk.errcodes import ERRCODES, RETRYABLE
from receiver.dingtalk.errcodes import classify as from_errcode
from receiver.errors import DingTalkError, PermanentError, RetryableError, TokenError
from tests.conftest import Engine


def gettoken(e: DingTalkError) -> DingTalkError:
    e.api = "gettoken"
    return e


@pytest.mark.parametrize(
    ("error", "kind", "reason", "throttle"),
    [
        (RetryableError("x", transport="network"), Kind.PLATFORM, "network", False),
        (RetryableError("x", transport="timeout"), Kind.PLATFORM, "timeout", False),
        (RetryableError("x", status=502, transport="http_5xx"), Kind.PLATFORM, "http_5xx", False),
        (RetryableError("x", status=429, transport="http_429"), Kind.PLATFORM, "http_429", True),
        (RetryableError("x", transport="punish"), Kind.PLATFORM, "punish", True),
        (from_errcode(-1, "busy"), Kind.PLATFORM, "busy", False),
        (from_errcode(90002, "limit"), Kind.PLATFORM, "throttled", True),
        (from_errcode(1430003, "protect"), Kind.PLATFORM, "platform_protection", False),
        (TokenError("still bad", errcode=40014), Kind.PLATFORM, "token", False),
        (gettoken(PermanentError("40089 bad appsecret", errcode=40089)), Kind.PLATFORM, "token",
         False),
        (from_errcode(60011, "no permission"), Kind.PERMANENT, "permanent", False),
        (PermanentError("x", status=413), Kind.TOO_LONG, "too_long", False),
        (from_errcode(40035, "content 长度超过限制"), Kind.TOO_LONG, "too_long", False),
        (from_errcode(90020, "调用次数超过"), Kind.PERMANENT, "permanent", False),
        (RetryableError("unexpected reply (no task_id)"), Kind.MESSAGE, "retryable", False),
    ],
)  # fmt: skip
def test_classify(error: DingTalkError, kind: Kind, reason: str, throttle: bool) -> None:
    f = classify(error)
    assert (f.kind, f.reason, f.throttle) == (kind, reason, throttle)


def test_every_retryable_errcode_pauses() -> None:
    for code, (kind, _) in ERRCODES.items():
        if kind == RETRYABLE:
            assert classify(from_errcode(code, "")).kind is Kind.PLATFORM, code


def test_probe_intervals() -> None:
    outage = classify(RetryableError("x", transport="network"))
    assert [outage.probe_after(n, 1.0) for n in range(1, 7)] == [1, 2, 4, 5, 5, 5]
    assert outage.probe_after(9, 0.1, cap_s=0.5) == 0.5
    throttle = classify(from_errcode(90002, ""))
    assert {throttle.probe_after(n, 1.0) for n in range(1, 9)} == {1.0}
    assert classify(RetryableError("x", transport="punish")).probe_after(1, 1.0) == 60


def test_the_pause_is_shared_and_one_process_takes_each_probe(engine: Engine) -> None:
    one, two = engine.outbox(), engine.outbox()  # two processes' (or replicas') views
    state = one.pause(reason="http_5xx", error="HTTP 502", probe_in=0, item_id=7)
    assert two.pause_state() == state and state.failures == 1 and not state.confirmed
    assert two.paused_reason() == ("http_5xx", state.since)
    assert one.take_probe(60, "host:1:1") is True and two.take_probe(60, "host:2:2") is False
    one.release_owner("host:1:1")  # the prober died: the next probe need not wait 60 s
    assert two.take_probe(60, "host:2:2") is True
    again = two.pause(reason="http_5xx", error="HTTP 502", probe_in=5, item_id=8)
    assert again.failures == 2 and again.confirmed and again.since == state.since
    assert one.resume() == again and two.pause_state() is None and two.resume() is None


def test_an_error_is_logged_once_per_10_s_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    quiet = RepeatLimiter(logging.getLogger("t"), clock=lambda: now[0])
    for step in range(25):  # every 0.5 s for 12.5 s
        now[0] = step * 0.5
        quiet.error("outbox_unavailable error=disk full")
    quiet.error("outbox_unavailable error=locked")  # a different error is logged at once
    quiet.ended("outbox_available_again")
    assert [r.getMessage() for r in caplog.records] == [
        "outbox_unavailable error=disk full",
        "outbox_unavailable error=disk full (repeated 19 times in 10s)",
        "outbox_unavailable error=locked",
        "outbox_available_again errors_not_logged=4",
    ]
