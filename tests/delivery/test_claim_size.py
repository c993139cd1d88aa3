"""A claim leases about a second's worth of calls at the send rate: 10 to 50 items."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from receiver.delivery import health
from receiver.delivery.limits import Limits
from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry
from receiver.delivery.sending import claim_size
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client, SendResult
from receiver.settings import Settings
from tests.fakes.dingtalk import FakeDingTalk

MSG = {"msgtype": "text", "text": {"content": "磁盘满了"}}


def limits(path: Path, rate: float) -> Limits:
    return Limits(str(path), rate=rate, per_minute=10**6, daily=10**6)


@pytest.mark.parametrize(("rate", "size"), [(0.5, 10), (10, 10), (30, 30), (1000, 50)])
def test_a_claim_is_a_second_of_calls_at_the_send_rate(
    tmp_path: Path, rate: float, size: int
) -> None:
    assert claim_size(limits(tmp_path / "limits.sqlite3", rate)) == size


def test_a_claim_is_a_second_of_the_recipients_a_minute_when_fewer(tmp_path: Path) -> None:
    assert claim_size(Limits(str(tmp_path / "l"), rate=1000, per_minute=1200)) == 20


def test_without_limits_a_claim_is_ten() -> None:
    assert claim_size(None) == 10


def test_a_batch_sends_what_its_claim_leased_and_leaves_the_rest_queued(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    box = Outbox(live_settings.data_dir)
    for n in range(60):  # each its own group: none waits for another
        box.enqueue([Entry("ops", MSG, (f"u{n}",))], source="alertmanager", group_key=f"g{n}")
    fast = Worker(
        box, Client(live_settings), limits=limits(Path(live_settings.data_dir) / "a", 1000)
    )
    assert fast.send_batch() == 50
    assert (box.counts()["sent"], box.counts()["queued"]) == (50, 10)
    # DingTalk's own rate, 10 calls a second: a claim leases 10, not a batch that waits.
    slow = Worker(box, Client(live_settings), limits=limits(Path(live_settings.data_dir) / "b", 10))
    assert slow.send_batch() == 10
    assert box.counts()["sent"] == 60 and len(fake_dingtalk.delivered()) == 60


class SlowSender:
    """Notes how old the delivery heartbeat is at each send."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.ages: list[float] = []

    def async_send(
        self, userid_list: list[str], msg: dict[str, object], dept_id_list: list[int]
    ) -> list[SendResult]:
        self.ages.append(health.heartbeat_age(self.data_dir) or 0.0)
        return [SendResult(len(self.ages), "", tuple(userid_list))]


def test_a_batch_of_50_beats_the_heartbeat_every_10_sends(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path))
    for n in range(50):
        box.enqueue([Entry("ops", MSG, (f"u{n}",))], source="alertmanager", group_key=f"g{n}")
    health.beat(str(tmp_path), now=time.time() - 1000)  # as if the last loop began long ago
    sender = SlowSender(str(tmp_path))
    assert Worker(box, sender, limits=limits(tmp_path / "limits", 1000)).send_batch() == 50
    assert min(sender.ages[:10]) > 900  # the loop beats, not the batch's first sends
    assert max(sender.ages[10:]) < 60, sender.ages  # /readyz's 120 s never runs out mid-batch
