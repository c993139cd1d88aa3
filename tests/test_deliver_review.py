"""Delivery edge cases found in review: each one lost, mangled or stalled an alert."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from receiver.delivery.limits import Limits
from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client, SendResult
from receiver.settings import Settings
from tests.fakes.dingtalk import FakeDingTalk

MSG = {"msgtype": "text", "text": {"content": "磁盘满了\n" + "x" * 600 + "\n11:37:27 #a1b2c3"}}


def enqueue(box: Outbox, *userids: str) -> int:
    return box.enqueue([Entry("ops", MSG, userids)], source="alertmanager", group_key="g")[0]


def test_a_quota_error_that_says_exceeded_is_not_cut_as_too_long(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    # DingTalk's own wording for 90020 (dingtalk.com help 1061621972) says 超过.
    quota = (
        "您的企业本月api调用量已超过限制,调用量:10001次,额度:10000次,"
        "请登录开发者后台-资源管理-查看用量明细"
    )
    box = Outbox(live_settings.data_dir)
    item_id = enqueue(box, "a")
    fake_dingtalk.fail("asyncsend_v2", times=10, body={"errcode": 90020, "errmsg": quota})
    worker = Worker(box, Client(live_settings))
    for _ in range(3):
        worker.run_once()
    item = box.get(item_id)
    assert item is not None and item.state == "dead" and item.errcode == 90020
    assert item.msg == MSG  # the alert is whole, for `outbox retry --dead` once the quota resets
    assert len(fake_dingtalk.sends()) == 1


def test_an_unexpected_reply_does_not_kill_the_worker(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    first, other = enqueue(box, "a"), enqueue(box, "b")
    fake_dingtalk.fail("asyncsend_v2", times=1, body={"errcode": 0, "request_id": "r-1"})
    Worker(box, Client(live_settings), backoff_min_s=0, backoff_max_s=0).run_once()
    states = {i.id: i.state for i in box.items()}
    assert states == {first: "retry", other: "sent"}
    assert f"retry_scheduled id={first}" in caplog.text and "no task_id" in caplog.text


class _Broken:
    def async_send(self, *args: object) -> list[SendResult]:
        raise TypeError("a bug nobody foresaw")


def test_an_exception_nobody_foresaw_is_a_retry_not_a_dead_worker(
    live_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    item = enqueue(box, "a")
    Worker(box, _Broken(), backoff_min_s=0, backoff_max_s=0).run_once()
    assert {i.id: i.state for i in box.items()} == {item: "retry"}
    assert f"send_failed_unexpectedly id={item}" in caplog.text and "TypeError" in caplog.text


def test_a_lease_lost_while_waiting_for_the_limiter_is_not_sent(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(live_settings.data_dir)
    enqueue(box, "a")
    limits = Limits(str(Path(live_settings.data_dir) / "limits.sqlite3"), rate=1)
    assert limits.reserve(1) == 0  # the one call of this second is taken: the next one waits
    worker = Worker(box, Client(live_settings), limits=limits, lease_s=1.0)
    (item,) = box.claim(owner=worker.owner, lease_s=1.0)
    worker._claimed_at = time.monotonic()

    def steal() -> None:  # the process was frozen past its lease; another one took the item
        time.sleep(0.2)
        box.claim(owner="elsewhere:1:1", lease_s=60, now=time.time() + 5)

    thief = threading.Thread(target=steal)
    thief.start()
    assert worker.handle(item) is False
    thief.join()
    assert fake_dingtalk.sends() == [] and f"lease_lost id={item.id}" in caplog.text
    assert box.get(item.id).owner == "elsewhere:1:1"  # type: ignore[union-attr]
