"""Several delivery processes on one store: each plans its own alert groups, all are planned."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from receiver.delivery import health, wake
from receiver.delivery.outbox import Outbox
from receiver.delivery.planner import Planner
from receiver.delivery.shards import TAKEOVER_S, Shards, shard_of
from receiver.delivery.state import State
from receiver.delivery.wake import Wakeup
from receiver.settings import Settings
from tests.conftest import FIXTURES, Engine

FIRING = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())


@pytest.fixture(autouse=True)
def one_process_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wake, "_processes", 1)  # State(settings) sets it: not for later tests


@pytest.fixture
def two(settings: Settings) -> Settings:
    os.makedirs(settings.data_dir, exist_ok=True)
    return settings.with_(delivery_processes=2)


@pytest.fixture
def two_on(two: Settings, engine: Engine) -> Settings:
    """Two processes' settings on SQLite or PostgreSQL."""
    return two.with_(database_url=engine.database_url)


def accept(box: Outbox, group: str, status: str = "firing") -> int:
    p = {**FIRING, "groupKey": group, "status": status}
    p["alerts"] = [{**a, "status": status} for a in FIRING["alerts"]]
    return box.accept(json.dumps(p).encode(), source="alertmanager", receiver=None,
                      group_key=group).id  # fmt: skip


def beat_both(data_dir: str) -> None:
    for i in (0, 1):
        assert health.beat(data_dir, process=i)


def test_a_group_always_falls_to_the_same_process_and_the_groups_spread() -> None:
    keys = [f'{{}}:{{alertname="A{i}"}}' for i in range(1000)]
    assert [shard_of(k, 2) for k in keys] == [shard_of(k, 2) for k in keys]
    spread = Counter(shard_of(k, 2) for k in keys)
    assert set(spread) == {0, 1} and min(spread.values()) > 400, spread
    assert {shard_of(k, 3) for k in keys} == {0, 1, 2}


def test_a_process_takes_the_groups_of_one_gone_quiet(two: Settings) -> None:
    mine = Shards(two.data_dir, 0, 2)
    other_group = next(f"g{i}" for i in range(100) if shard_of(f"g{i}", 2) == 1)
    own_group = next(f"g{i}" for i in range(100) if shard_of(f"g{i}", 2) == 0)
    now = time.time()

    # Process 1 has never beaten (not started yet): its groups are planned here meanwhile.
    assert health.beat(two.data_dir, now=now, process=0)
    assert mine.taken(now)(other_group) and mine.taken(now)(own_group)
    # It beats: each plans its own.
    assert health.beat(two.data_dir, now=now - 1, process=1)
    assert not mine.taken(now)(other_group) and mine.taken(now)(own_group)
    # Its heartbeat is older than TAKEOVER_S (it died, or is stuck in slow calls).
    assert health.beat(two.data_dir, now=now - TAKEOVER_S - 1, process=1)
    assert mine.taken(now)(other_group)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_due_pending_of_the_groups_taken_oldest_first_within_the_limit(two_on: Settings) -> None:
    two = two_on
    box = Outbox(two.data_dir, database_url=two.database_url)
    ids = {f"g{i}": accept(box, f"g{i}") for i in range(30)}
    taken = {g for g in ids if shard_of(g, 2) == 1}
    due = box.due_pending(limit=5, taken=lambda g: g in taken)
    assert [p.id for p in due] == sorted(ids[g] for g in taken)[:5]
    assert box.due_pending(limit=50, taken=lambda g: False) == []


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_two_planners_plan_each_webhook_once_each_group_in_one_process(
    two_on: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    two = two_on
    box = Outbox(two.data_dir, database_url=two.database_url)
    groups = [f'{{}}:{{alertname="A{i}"}}' for i in range(24)]
    for g in groups:  # each group fires, then resolves, before anything is planned
        accept(box, g)
    for g in groups:
        accept(box, g, "resolved")
    beat_both(two.data_dir)
    planners = [Planner(State(two, outbox=box), shards=Shards(two.data_dir, i, 2)) for i in (0, 1)]
    prepared: Counter[int] = Counter()
    by: dict[str, set[int]] = {}
    for i, planner in enumerate(planners):
        real = planner.prepare

        def counted(p, real=real, i=i):  # type: ignore[no-untyped-def]
            prepared[p.id] += 1
            by.setdefault(p.group_key, set()).add(i)
            return real(p)

        monkeypatch.setattr(planner, "prepare", counted)
    while sum(p.run_once() for p in planners):
        pass
    assert box.counts()["pending"] == 0
    assert set(prepared.values()) == {1} and len(prepared) == 2 * len(groups)  # none twice
    assert all(by[g] == {shard_of(g, 2)} for g in groups)  # a group's webhooks: one process
    assert {len(s) for s in by.values()} == {1} and {i for s in by.values() for i in s} == {0, 1}
    items = box.items()
    for g in groups:  # planned in the order received: firing first
        assert [i.status for i in items if i.group_key == g] == ["firing", "resolved"]


def test_a_poke_reaches_every_delivery_process(tmp_path: Path) -> None:
    data_dir = str(tmp_path)
    waiters = [Wakeup(data_dir, i) for i in range(3)]
    try:
        assert {os.path.basename(w.path) for w in waiters} == {
            "delivery.sock", "delivery-1.sock", "delivery-2.sock",
        }  # fmt: skip
        wake.configure(3)
        wake.poke(data_dir)
        assert all(w.wait(30) for w in waiters)
        wake.configure(1)
        wake.poke(data_dir)
        assert waiters[0].wait(30) and not waiters[1].wait(0.05) and not waiters[2].wait(0)
    finally:
        for w in waiters:
            w.close()


def test_ready_only_once_every_delivery_process_beats(two: Settings) -> None:
    from receiver.web.app import create_app

    client = create_app(two).test_client()
    assert health.beat(two.data_dir, process=0)
    res = client.get("/readyz")
    assert res.status_code == 503
    assert res.json["delivery"]["error"] == "the delivery worker has not started"
    assert health.beat(two.data_dir, now=time.time() - health.STALE_AFTER_S - 5, process=1)
    res = client.get("/readyz")
    assert res.status_code == 503
    assert "no delivery heartbeat for 12" in res.json["delivery"]["error"]
    assert health.beat(two.data_dir, process=1)
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("value", ["0", "17", "two"])
def test_a_number_of_processes_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="RECEIVER_DELIVERY_PROCESSES"):
        Settings.from_env({"RECEIVER_DELIVERY_PROCESSES": value})
    assert Settings.from_env({}).delivery_processes == 1
    assert Settings.from_env({"RECEIVER_DELIVERY_PROCESSES": "4"}).delivery_processes == 4


def test_deliver_refuses_a_process_number_it_does_not_have(settings: Settings) -> None:
    env = {"RECEIVER_DELIVERY_PROCESSES": "2", "RECEIVER_DATA_DIR": settings.data_dir}
    res = CliRunner().invoke(main, ["deliver", "--process", "2"], env=env)
    assert res.exit_code == 2 and "runs processes 0..1" in res.output
