"""Heartbeats: a replica whose heartbeat is stale has its leases given back, on each engine."""

from __future__ import annotations

from receiver.delivery.pipeline import Entry
from receiver.delivery.replicas import Heartbeat, release_stale
from tests.conftest import Engine

MSG = {"msgtype": "text", "text": {"content": "x"}}
T0 = 1_800_000_000.0


def enqueue(box, *users: str) -> list[int]:  # type: ignore[no-untyped-def]
    return box.enqueue([Entry("ops", MSG, (u,)) for u in users], source="am", group_key="g")


def test_a_stale_heartbeat_releases_that_replicas_leases_only(engine: Engine) -> None:
    box = engine.outbox()
    a_items = enqueue(box, "a1", "a2")
    box.claim(owner="host-a:1:1", lease_s=600, now=T0)
    b_items = enqueue(box, "b1")
    box.claim(owner="host-b:1:1", lease_s=600, now=T0)
    box.beat("host-a:1:1", started_at=T0, now=T0)
    box.beat("host-b:1:1", started_at=T0, now=T0 + 10)
    assert release_stale(box, stale_s=15, now=T0 + 15) == {}  # 15 s is not yet stale
    # host-a stopped beating 16 s ago: its items go back long before their 600 s lease.
    assert release_stale(box, stale_s=15, now=T0 + 16) == {"host-a:1:1": 2}
    assert box.replicas() == {"host-b:1:1": T0 + 10}
    states = {i.id: (i.state, i.owner) for i in box.items()}
    assert {i: states[i] for i in a_items} == {i: ("queued", None) for i in a_items}
    assert states[b_items[0]] == ("sending", "host-b:1:1")
    # Another replica now takes them over, though their lease had 584 s to run.
    assert sorted(i.id for i in box.claim(owner="host-b:1:1", now=T0 + 16)) == a_items


def test_the_heartbeat_beats_and_takes_over_a_dead_replicas_work(engine: Engine) -> None:
    box = engine.outbox()
    (item,) = enqueue(box, "a")
    box.claim(owner="dead:1:1", lease_s=600, now=T0)
    box.beat("dead:1:1", started_at=T0, now=T0)
    now = [T0 + 5]
    live = Heartbeat(engine.outbox(), "live:2:2", clock=lambda: now[0])
    assert live.tick() == {}
    now[0] = T0 + 20
    assert live.tick() == {"dead:1:1": 1}
    assert box.replicas() == {"live:2:2": T0 + 20}
    live.stop()  # a clean stop removes its own row
    assert box.replicas() == {}
    assert box.get(item) is not None and box.get(item).state == "queued"  # type: ignore[union-attr]
