"""The delivery loop takes at most a turn every TURN_MIN_S once it has work: a group
posted again and again meanwhile is planned together, and only its newest is sent."""

from __future__ import annotations

import threading
import time

import pytest

from receiver.delivery import worker
from receiver.delivery.outbox import Outbox
from receiver.delivery.process import make_worker
from receiver.settings import Settings
from tests.conftest import FIXTURES
from tests.fakes.dingtalk import FakeDingTalk

GENEROUS_S = 30.0  # how long a test waits for what should take milliseconds
BODY = (FIXTURES / "alertmanager/firing-4.json").read_bytes()
GROUP = '{}/{team="db"}:{alertname="DiskFull", cluster="sh-prod-1"}'


def test_turns_that_did_work_begin_at_least_turn_min_apart(live_settings: Settings) -> None:
    w = make_worker(live_settings)
    begun: list[float] = []

    def plan() -> int:
        begun.append(time.monotonic())
        if len(begun) == 5:
            w.stop()
        return 1  # as if a webhook was planned each turn

    w.plan = plan
    t = threading.Thread(target=w.run)
    t.start()
    t.join(GENEROUS_S)
    assert not t.is_alive()
    gaps = [b - a for a, b in zip(begun, begun[1:], strict=False)]
    assert len(gaps) == 4
    assert min(gaps) >= worker.TURN_MIN_S - 0.001, gaps


def test_a_group_posted_during_the_pause_is_planned_together(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "TURN_MIN_S", 3.0)  # room for the posts below on any machine
    w = make_worker(live_settings)
    box = Outbox(live_settings.data_dir)
    t = threading.Thread(target=w.run)
    t.start()
    try:
        box.accept(BODY, source="alertmanager", receiver=None, group_key=GROUP)
        deadline = time.monotonic() + GENEROUS_S
        while time.monotonic() < deadline and not fake_dingtalk.delivered():
            time.sleep(0.01)
        assert len(fake_dingtalk.delivered()) == 1
        first = time.monotonic()
        for _ in range(5):  # the same group again, while the loop waits out its turn
            box.accept(BODY, source="alertmanager", receiver=None, group_key=GROUP)
        assert time.monotonic() - first < 3.0  # all of them before its next turn
        while time.monotonic() < deadline and len(fake_dingtalk.delivered()) < 2:
            time.sleep(0.01)
        time.sleep(0.5)  # nothing more comes
        assert len(fake_dingtalk.delivered()) == 2  # one for the five, not five
        assert box.counts()["pending"] == 0
    finally:
        w.stop()
        t.join(GENEROUS_S)
    assert not t.is_alive()
