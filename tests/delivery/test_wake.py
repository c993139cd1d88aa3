"""Delivery sleeps until there is work: a commit that queues work pokes its socket."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from receiver.delivery import wake, worker
from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry
from receiver.delivery.process import make_worker
from receiver.delivery.wake import Wakeup
from receiver.errors import OutboxUnavailable
from receiver.settings import Settings
from tests.conftest import Engine
from tests.delivery.loop_support import GENEROUS_S, running, wait_for_calls
from tests.fakes.dingtalk import FakeDingTalk

MSG = {"msgtype": "text", "text": {"content": "磁盘满了"}}


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    os.makedirs(tmp_path / "d")
    return str(tmp_path / "d")


def test_a_poke_wakes_the_waiter_and_every_pending_poke_is_taken(data_dir: str) -> None:
    w = Wakeup(data_dir)
    try:
        assert not w.wait(0)
        for _ in range(3):
            wake.poke(data_dir)
        assert w.wait(GENEROUS_S)
        assert not w.wait(0)  # the three came as one wake-up
    finally:
        w.close()
    assert not os.path.exists(wake.path(data_dir))
    wake.poke(data_dir)  # nobody listens: no error


@pytest.mark.parametrize(
    "commit",
    [
        lambda b: b.accept(b"{}", source="alertmanager", receiver=None, group_key="g"),
        lambda b: b.accept_once(
            b"{}", source="alertmanager", receiver=None, group_key="g", key="k", window_s=300
        ),
        lambda b: b.enqueue([Entry("ops", MSG, ("a",))], source="alertmanager", group_key="g"),
        lambda b: b.requeue(),
        lambda b: b.replan(1),
    ],
    ids=["accept", "accept_once", "enqueue", "requeue", "replan"],
)
def test_a_commit_that_queues_work_wakes_delivery(data_dir: str, commit: object) -> None:
    box = Outbox(data_dir)
    w = Wakeup(data_dir)
    try:
        assert callable(commit)
        commit(box)
        assert w.wait(GENEROUS_S)
        box.counts()  # reads and other writes wake nobody
        box.purge_sent(3600)
        assert not w.wait(0)
    finally:
        w.close()


def test_a_transaction_rolled_back_wakes_nobody(data_dir: str) -> None:
    box = Outbox(data_dir)
    w = Wakeup(data_dir)
    try:
        with pytest.raises(OutboxUnavailable):
            with box._tx() as db:
                box._insert(db, [Entry("ops", MSG, ("a",))], "alertmanager", "g", time.time())
                db.execute("INSERT INTO no_such_table VALUES (1)")
        assert not w.wait(0)
        assert box.items() == []
    finally:
        w.close()


def test_a_data_dir_too_long_for_a_socket_means_polling(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120)
    os.makedirs(deep)
    assert Wakeup.open(str(deep)) is None
    wake.poke(str(deep))  # no error either


def test_an_idle_worker_sends_when_poked_not_when_its_slow_poll_comes_round(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "IDLE_POLL_S", 3600.0)  # without the poke: an hour
    w = make_worker(live_settings)
    assert w.wakeup is not None
    box = Outbox(live_settings.data_dir)
    waiting = threading.Event()
    real_wait = w.wakeup.wait

    def wait(timeout: float) -> bool:
        waiting.set()  # idle: the outbox was empty, and it sleeps
        return real_wait(timeout)

    monkeypatch.setattr(w.wakeup, "wait", wait)
    with running(w):  # its stop wakes the wait: run returns without waiting out the hour
        assert waiting.wait(GENEROUS_S)
        deadline = time.monotonic() + GENEROUS_S
        box.enqueue([Entry("ops", MSG, ("a",))], source="alertmanager", group_key="g")
        wait_for_calls(fake_dingtalk, 1, deadline)
        assert [r.body["userid_list"] for r in fake_dingtalk.delivered() if r.body] == ["a"]
    w.wakeup.close()


def test_the_next_due_work_is_the_earliest_of_each_kind(engine: Engine) -> None:
    """What an idle worker sleeps until (without a poke), on each engine."""
    box = Outbox(engine.data_dir, database_url=engine.database_url)
    assert box.next_send_due() is None
    t0 = time.time()
    first, second = box.enqueue(
        [Entry("ops", MSG, ("a",)), Entry("ops", MSG, ("b",))], source="alertmanager",
        group_key="g",
    )  # fmt: skip
    due = box.next_send_due()
    assert due is not None and t0 - 1 <= due <= time.time()  # queued: due now
    box.mark_retry(first, delay_s=300, error="x", errcode=None)
    box.mark_retry(second, delay_s=200, error="x", errcode=None)
    assert abs((box.next_send_due() or 0) - (t0 + 200)) < 5  # the earlier of the two retries
    pending = box.accept(b"{}", source="alertmanager", receiver=None, group_key="h")
    box.defer(pending.id, error="x", delay_s=100)
    assert abs((box.next_send_due() or 0) - (t0 + 100)) < 5  # a plan that failed, tried again
    box.pause(reason="outage", error="x", probe_in=50, item_id=first)
    assert abs((box.next_send_due() or 0) - (t0 + 50)) < 5  # the pause's next probe


def test_an_idle_worker_sleeps_until_the_next_work_falls_due(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry 1 s away goes out after 1 s, not at a slow poll (made an hour here)."""
    monkeypatch.setattr(worker, "IDLE_POLL_S", 3600.0)
    monkeypatch.setattr(worker, "IDLE_MAX_S", 3600.0)
    w = make_worker(live_settings)
    assert w.wakeup is not None
    box = Outbox(live_settings.data_dir)
    (item,) = box.enqueue([Entry("ops", MSG, ("a",))], source="alertmanager", group_key="g")
    box.mark_retry(item, delay_s=1.0, error="busy", errcode=None)
    waits: list[float] = []
    real_wait = w.wakeup.wait

    def wait(timeout: float) -> bool:
        waits.append(timeout)
        return real_wait(timeout)

    monkeypatch.setattr(w.wakeup, "wait", wait)
    with running(w):
        wait_for_calls(fake_dingtalk, 1, time.monotonic() + GENEROUS_S)
        assert [r.body["userid_list"] for r in fake_dingtalk.delivered() if r.body] == ["a"]
        assert 0 < waits[0] <= 1.1  # until the retry, and a little after it
    w.wakeup.close()


def test_with_nothing_due_it_sleeps_longest_unless_other_hosts_cannot_wake_it(
    engine: Engine, live_settings: Settings
) -> None:
    w = make_worker(live_settings.with_(database_url=engine.database_url))
    try:
        longest = worker.IDLE_POLL_S if engine.database_url else worker.IDLE_MAX_S
        assert w._idle_wait(0.05) == longest
        assert w._idle_wait(7.0) == 7.0  # a slow turn (a long backlog's scan) waits longer
        # Due, but not sent (it waits behind another, say): looked at again every second.
        w.outbox.enqueue([Entry("ops", MSG, ("a",))], source="alertmanager", group_key="g")
        assert w._idle_wait(0.05) == worker.IDLE_POLL_S
    finally:
        if w.wakeup is not None:
            w.wakeup.close()
