"""Once webhooks come faster than turns, the delivery loop takes at most a turn every
TURN_MIN_S: a group posted again and again meanwhile is planned together, and only its
newest is sent. One webhook at a time goes at once."""

from __future__ import annotations

import threading
import time

import pytest

from receiver.delivery import worker
from receiver.delivery.outbox import Outbox
from receiver.delivery.process import make_worker
from receiver.settings import Settings
from tests.conftest import FIXTURES
from tests.delivery.loop_support import GENEROUS_S, running, wait_for_calls
from tests.fakes.dingtalk import FakeDingTalk

BODY = (FIXTURES / "alertmanager/firing-4.json").read_bytes()
GROUP = '{}/{team="db"}:{alertname="DiskFull", cluster="sh-prod-1"}'


def turns(settings: Settings, planned_each: int) -> list[float]:
    """When each of five turns began, each planning `planned_each` webhooks."""
    w = make_worker(settings)
    begun: list[float] = []

    def plan() -> int:
        begun.append(time.monotonic())
        if len(begun) == 5:
            w.stop()
        return planned_each

    w.plan = plan
    t = threading.Thread(target=w.run)
    t.start()
    t.join(GENEROUS_S)
    assert not t.is_alive()
    return begun


def test_turns_that_planned_several_webhooks_begin_turn_min_apart(
    live_settings: Settings,
) -> None:
    begun = turns(live_settings, planned_each=2)
    gaps = [b - a for a, b in zip(begun, begun[1:], strict=False)]
    assert len(gaps) == 4
    assert min(gaps) >= worker.TURN_MIN_S - 0.001, gaps


def test_turns_of_one_webhook_each_are_not_held_back(
    live_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "TURN_MIN_S", 10.0)  # five paced turns would take 40 s
    begun = turns(live_settings, planned_each=1)
    assert begun[-1] - begun[0] < 5.0


def test_a_group_posted_during_the_pause_is_planned_together(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "TURN_MIN_S", 3.0)  # room for the posts below on any machine
    box = Outbox(live_settings.data_dir)
    for _ in range(2):  # two waiting: the first turn plans them together, then pauses
        box.accept(BODY, source="alertmanager", receiver=None, group_key=GROUP)
    with running(make_worker(live_settings)):
        deadline = time.monotonic() + GENEROUS_S
        wait_for_calls(fake_dingtalk, 1, deadline)
        assert len(fake_dingtalk.delivered()) == 1  # one call for the two
        first = time.monotonic()
        for _ in range(5):  # the same group again, while the loop waits out its turn
            box.accept(BODY, source="alertmanager", receiver=None, group_key=GROUP)
        assert time.monotonic() - first < 3.0  # all of them before its next turn
        wait_for_calls(fake_dingtalk, 2, deadline)
        time.sleep(0.5)  # nothing more comes
        assert len(fake_dingtalk.delivered()) == 2  # one for the five, not five
        assert box.counts()["pending"] == 0
