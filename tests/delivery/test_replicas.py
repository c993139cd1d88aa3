"""Heartbeats: a replica whose heartbeat is stale has its leases given back, on each engine."""

from __future__ import annotations

import time
from typing import Any

import pytest

from receiver.delivery.pipeline import Entry
from receiver.delivery.replicas import Heartbeat, release_stale
from receiver.errors import OutboxUnavailable
from tests.conftest import Engine

MSG = {"msgtype": "text", "text": {"content": "x"}}


@pytest.fixture
def t0() -> float:
    """The tests' "now": an hour ahead of the real clock, which `enqueue` reads for an
    item's first `next_attempt_at`. A fixed date stops claiming anything once it is past."""
    return time.time() + 3600


def enqueue(box, *users: str) -> list[int]:  # type: ignore[no-untyped-def]
    return box.enqueue([Entry("ops", MSG, (u,)) for u in users], source="am", group_key="g")


def test_a_stale_heartbeat_releases_that_replicas_leases_only(engine: Engine, t0: float) -> None:
    box = engine.outbox()
    a_items = enqueue(box, "a1", "a2")
    box.claim(owner="host-a:1:1", lease_s=600, now=t0)
    b_items = enqueue(box, "b1")
    box.claim(owner="host-b:1:1", lease_s=600, now=t0)
    box.beat("host-a:1:1", started_at=t0, now=t0)
    box.beat("host-b:1:1", started_at=t0, now=t0 + 10)
    assert release_stale(box, stale_s=15, now=t0 + 15) == {}  # 15 s is not yet stale
    # host-a stopped beating 16 s ago: its items go back long before their 600 s lease.
    assert release_stale(box, stale_s=15, now=t0 + 16) == {"host-a:1:1": 2}
    assert box.replicas() == {"host-b:1:1": t0 + 10}
    states = {i.id: (i.state, i.owner) for i in box.items()}
    assert {i: states[i] for i in a_items} == {i: ("queued", None) for i in a_items}
    assert states[b_items[0]] == ("sending", "host-b:1:1")
    # Another replica now takes them over, though their lease had 584 s to run.
    assert sorted(i.id for i in box.claim(owner="host-b:1:1", now=t0 + 16)) == a_items


def test_the_heartbeat_beats_and_takes_over_a_dead_replicas_work(engine: Engine, t0: float) -> None:
    box = engine.outbox()
    (item,) = enqueue(box, "a")
    box.claim(owner="dead:1:1", lease_s=600, now=t0)
    box.beat("dead:1:1", started_at=t0, now=t0)
    now = [t0 + 5]
    live = Heartbeat(engine.outbox(), "live:2:2", clock=lambda: now[0])
    assert live.tick() == {}
    now[0] = t0 + 20
    assert live.tick() == {"dead:1:1": 1}
    assert box.replicas() == {"live:2:2": t0 + 20}
    live.stop()  # a clean stop removes its own row
    assert box.replicas() == {}
    assert box.get(item) is not None and box.get(item).state == "queued"  # type: ignore[union-attr]


class Outage:
    """An outbox whose database can be taken away: every call then fails as PostgreSQL's do."""

    def __init__(self, box: Any) -> None:
        self.box, self.down = box, False

    def __getattr__(self, name: str) -> Any:
        if self.down:
            raise OutboxUnavailable("outbox: PostgreSQL unreachable: connection refused")
        return getattr(self.box, name)


def test_after_an_outage_a_replica_waits_before_it_calls_another_dead(
    engine: Engine, t0: float
) -> None:
    """The database down for 40 s: no replica could beat, so none is dead for that alone."""
    box = engine.outbox()
    (item,) = enqueue(box, "b1")
    box.claim(owner="b:2:2", lease_s=600, now=t0)  # b is sending it when the database goes
    now = [t0]
    a_box = Outage(engine.outbox())
    a = Heartbeat(a_box, "a:1:1", clock=lambda: now[0])  # type: ignore[arg-type]
    for t in (0, 2, 16):
        now[0] = t0 + t
        box.beat("b:2:2", started_at=t0, now=now[0])
        assert a.tick() == {}
    a_box.down = True
    now[0] = t0 + 18
    with pytest.raises(OutboxUnavailable):
        a.tick()
    a_box.down = False
    now[0] = t0 + 60  # back; a beats first, b's last beat is 44 s old
    assert a.tick() == {}
    assert box.get(item).owner == "b:2:2"  # type: ignore[union-attr]
    now[0] = t0 + 62
    box.beat("b:2:2", started_at=t0, now=now[0])  # b is alive: it beats again
    now[0] = t0 + 76
    assert a.tick() == {}
    assert box.get(item).owner == "b:2:2"  # type: ignore[union-attr]
    # b stops beating: once its beat is over 15 s old, a releases its work as before.
    now[0] = t0 + 78
    assert a.tick() == {"b:2:2": 1}
    assert box.get(item).state == "queued"  # type: ignore[union-attr]
