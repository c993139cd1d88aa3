"""Escalation in the delivery process: started when planned, steps sent once when due,
stopped by an ack, a read receipt (from the fake getsendresult) or a resolve."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from receiver.delivery.escalate import IDLE_S, POLL_S, Escalator
from receiver.delivery.outbox import Item, Outbox
from receiver.delivery.planner import Planner
from receiver.dingtalk.client import Client
from receiver.messages.acklinks import verify
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, Engine
from tests.fakes.dingtalk import FakeDingTalk

FIRING = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())
KEY = "test-secret-key"
ROUTING = """\
users: {bob: u-bob, carol: u-carol, dave: u-dave}
escalation_policies:
  pager:
    until: UNTIL
    steps:
      - {after: 5m, notify: {users: [carol, bob]}}
      - {after: 10m, notify: {users: [dave], departments: [77]}}
receivers:
  - name: db
    users: [bob]
    escalation: pager
route:
  receiver: db
"""


@pytest.fixture
def settings(settings: Settings, engine: Engine) -> Settings:
    """Every test here on each engine: escalation steps exactly once, on PostgreSQL too.

    The tests post Alertmanager's repeats of a group seconds apart, where Alertmanager
    waits repeat_interval: the HA de-duplication window would take them for duplicates.
    """
    return settings.with_(database_url=engine.database_url, dedup_window=0.0)


class Clock:
    """The escalator's clock: real time shifted forward, so each test runs on any date."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


def setup(settings: Settings, tmp_path: Path, until: str = "ack") -> tuple[Flask, Outbox]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.replace("UNTIL", until))
    s = settings.with_(routing=str(routing), external_url="https://rx.example/", secret_key=KEY)
    return create_app(s), Outbox(s.data_dir, database_url=s.database_url)


def post(app: Flask, payload: dict[str, object]) -> None:
    reply = app.test_client().post("/alertmanager", json=payload)
    assert reply.status_code == 200
    assert Planner(app.extensions["receiver"]).run_once() == 1


def new_items(box: Outbox, seen: set[int]) -> list[Item]:
    items = [i for i in box.items() if i.id not in seen]
    seen.update(i.id for i in items)
    return sorted(items, key=lambda i: i.id)


def text(item: Item) -> str:
    return str(item.msg["markdown"]["text"])


def escalator(app: Flask, clock: Callable[[], float], receipts: object = None) -> Escalator:
    return Escalator(app.extensions["receiver"], receipts, clock=clock)  # type: ignore[arg-type]


def test_the_thread_sleeps_until_the_next_step_is_due(settings: Settings, tmp_path: Path) -> None:
    """Idle, the escalation thread wakes once a second (IDLE_S), not every POLL_S; with a
    step due sooner it wakes when the step is due; an overdue one it retries every POLL_S."""
    app, box = setup(settings, tmp_path)
    clock = Clock()
    run = escalator(app, clock)
    assert box.next_due() is None and run.wait_s() == IDLE_S  # nothing to escalate
    post(app, FIRING)
    (esc,) = box.escalations()
    due = box.next_due()
    assert due is not None and esc.due_at is not None and due == pytest.approx(esc.due_at)
    assert due > time.time() + 290  # the first step: `after: 5m`
    clock.shift = due - time.time() - 0.5
    assert 0.49 < run.wait_s() < 0.51  # half a second before it: wait that long
    clock.shift = due - time.time() - 0.05
    assert 0.04 < run.wait_s() < 0.06  # less than POLL_S before it: still on time
    clock.shift = due - time.time() - 30
    assert run.wait_s() == IDLE_S  # far off: look again in a second
    clock.shift = due - time.time() + 5
    assert run.wait_s() == POLL_S  # overdue (its read check failed, say): not in a loop


def test_an_unacknowledged_group_reaches_each_step_once(settings: Settings, tmp_path: Path) -> None:
    app, box = setup(settings, tmp_path)
    clock, seen = Clock(), set[int]()
    post(app, FIRING)
    (first,) = new_items(box, seen)
    assert first.userids == ("u-bob",)
    link = text(first).split("(https://rx.example/ack/")[1].split(")")[0]
    token = verify(KEY, link, time.time())
    assert token.userid == "u-bob" and token.expires_at > time.time() + 23 * 3600
    (esc,) = box.escalations()
    assert esc.notification_id == token.notification_id and esc.step == 0

    run = escalator(app, clock)
    clock.shift = 298
    assert run.run_once() == 0 and not new_items(box, seen)  # not due yet
    clock.shift = 301
    assert run.run_once() == 1
    (step1,) = new_items(box, seen)
    assert step1.userids == ("u-carol",)  # bob was notified already
    assert "**未确认 5m · u-bob**" in text(step1)  # no directory: the userid stands for a name
    assert "https://rx.example/ack/" in text(step1)
    assert run.run_once() == 0 and not new_items(box, seen)  # sent once
    clock.shift = 301 + 599
    assert run.run_once() == 0
    clock.shift = 301 + 601
    run.run_once()
    step2 = new_items(box, seen)
    assert [(i.userids, i.departments) for i in step2] == [(("u-dave",), ()), ((), (77,))]
    assert "未确认 15m · u-bob、u-carol" in text(step2[0])
    assert "/ack/" not in text(step2[1])  # a department has no one person to sign for
    assert box.escalations() == []  # exhausted
    assert box.escalations(active_only=False)[0].state == "exhausted"
    clock.shift = 10_000
    assert run.run_once() == 0 and not new_items(box, seen)


def test_an_ack_stops_it_and_a_repeat_of_the_group_does_not_restart_it(
    settings: Settings, tmp_path: Path
) -> None:
    app, box = setup(settings, tmp_path)
    clock, seen = Clock(), set[int]()
    post(app, FIRING)
    new_items(box, seen)
    (esc,) = box.escalations()
    assert box.record_ack(esc.notification_id, "u-bob", via="page") == ["db"]
    clock.shift = 3600
    assert escalator(app, clock).run_once() == 0
    assert not new_items(box, seen)
    post(app, FIRING)  # Alertmanager's repeat_interval: the same incident, still acknowledged
    assert box.escalations() == []


def test_a_resolved_notification_stops_it(settings: Settings, tmp_path: Path) -> None:
    app, box = setup(settings, tmp_path)
    clock, seen = Clock(), set[int]()
    post(app, FIRING)
    resolved = json.loads((FIXTURES / "alertmanager/resolved.json").read_text())
    resolved["groupKey"] = FIRING["groupKey"]
    post(app, resolved)
    new_items(box, seen)
    clock.shift = 3600
    escalator(app, clock).run_once()
    assert not new_items(box, seen)
    assert box.escalations(active_only=False)[0].state == "resolved"
    post(app, FIRING)  # it fires again after resolving: a new incident, a new escalation
    assert len(box.escalations()) == 1


def test_every_ends_at_passed_stops_it(settings: Settings, tmp_path: Path) -> None:
    app, box = setup(settings, tmp_path)
    clock, seen = Clock(), set[int]()
    payload = json.loads(json.dumps(FIRING))
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))
    payload["alerts"][0]["endsAt"] = ends  # firing, but it ends in 2 minutes
    post(app, payload)
    new_items(box, seen)
    clock.shift = 301
    escalator(app, clock).run_once()
    assert not new_items(box, seen)
    assert box.escalations(active_only=False)[0].state == "resolved"


@pytest.mark.parametrize("read", [True, False])
def test_until_read_asks_getsendresult_just_before_the_step(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, tmp_path: Path, read: bool
) -> None:
    app, box = setup(live_settings, tmp_path, until="read")
    clock, seen = Clock(), set[int]()
    post(app, FIRING)
    (first,) = new_items(box, seen)
    box.mark_sent(first.id, [5001])
    fake_dingtalk.send_results[5001] = {
        "read_user_id_list": ["u-bob"] if read else [],
        "unread_user_id_list": [] if read else ["u-bob"],
    }
    clock.shift = 301
    escalator(app, clock, Client(app.extensions["receiver"].settings)).run_once()
    asked = [r.body for r in fake_dingtalk.requests if r.name == "getsendresult"]
    assert asked == [{"agent_id": 424242, "task_id": 5001}]
    if read:
        assert not new_items(box, seen)
        assert box.escalations(active_only=False)[0].state == "read"
        (bob,) = box.reached_by(box.escalations(active_only=False)[0].notification_id)
        assert bob.userid == "u-bob" and bob.read_at is not None
    else:
        assert [i.userids for i in new_items(box, seen)] == [("u-carol",)]


def test_two_escalators_send_a_due_step_once(settings: Settings, tmp_path: Path) -> None:
    app, box = setup(settings, tmp_path)
    clock, seen = Clock(), set[int]()
    post(app, FIRING)
    new_items(box, seen)
    clock.shift = 301
    a, b = escalator(app, clock), escalator(app, clock)
    b.owner = "another-host:1:1"
    (esc,) = box.claim_escalations(now=clock(), owner=b.owner, lease_s=60)
    assert a.run_once() == 0  # b holds the lease
    # b's claim was taken from it meanwhile (its lease ran out, a sent the step): b's late
    # record of the same step is refused, so the step is not sent twice.
    clock.shift = 301 + 61
    assert a.run_once() == 1
    assert len(new_items(box, seen)) == 1
    assert box.record_step(esc, owner=b.owner, step=1, at=clock(), next_due=None,
                           exhausted=False, entries=[], source="alertmanager") is None  # fmt: skip


def test_a_step_claimed_by_a_killed_process_is_sent_at_once_after_restart(
    settings: Settings, tmp_path: Path
) -> None:
    import socket
    import subprocess

    app, box = setup(settings, tmp_path)
    clock, seen = Clock(), set[int]()
    post(app, FIRING)
    new_items(box, seen)
    clock.shift = 301
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}:12345"
    assert len(box.claim_escalations(now=clock(), owner=dead, lease_s=3600)) == 1  # then -9
    assert [i.userids for i in new_items(box, seen)] == []
    assert escalator(app, clock).run_once() == 1  # not an hour later: its owner is dead
    assert [i.userids for i in new_items(box, seen)] == [("u-carol",)]


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(f"dingtalk_receiver_{name}", labels) or 0.0


def test_metrics_count_steps_acks_and_time_to_read_and_ack(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, tmp_path: Path
) -> None:
    from receiver.delivery.acks import acknowledge
    from receiver.delivery.followup import FollowUp

    app, box = setup(live_settings, tmp_path)
    clock, seen = Clock(), set[int]()
    steps, acks = (
        sample("escalations_total", policy="pager", step="1"),
        sample("acks_total", via="cli"),
    )
    reads, acked = sample("time_to_read_seconds_count"), sample("time_to_ack_seconds_count")
    post(app, FIRING)
    (first,) = new_items(box, seen)
    box.claim()
    box.mark_sent(first.id, [5001], followup_after_s=0)
    fake_dingtalk.send_results[5001] = {"read_user_id_list": ["u-bob"]}
    client = Client(app.extensions["receiver"].settings)
    assert FollowUp(box, client).run_once() == 1  # the follow-up notes who read it
    (esc,) = box.escalations()
    (bob,) = box.reached_by(esc.notification_id)
    assert bob.read_at is not None
    assert sample("time_to_read_seconds_count") == reads + 1
    clock.shift = 301
    escalator(app, clock).run_once()  # until: ack, so a read does not stop it
    assert sample("escalations_total", policy="pager", step="1") == steps + 1
    acknowledge(app.extensions["receiver"], esc.notification_id, "u-carol", via="cli")
    assert sample("acks_total", via="cli") == acks + 1
    assert sample("time_to_ack_seconds_count") == acked + 1


def test_old_records_are_purged_but_an_active_escalation_keeps_its_own(
    settings: Settings, tmp_path: Path
) -> None:
    app, box = setup(settings, tmp_path)
    post(app, FIRING)
    (esc,) = box.escalations()
    later = time.time() + 8 * 86400  # past the 7-day retention
    box.purge_escalations(7 * 86400, later)
    assert box.planned_notification(esc.notification_id) is not None  # still active: kept
    assert box.reached_by(esc.notification_id)
    box.record_ack(esc.notification_id, "u-bob", via="cli")
    assert box.purge_escalations(7 * 86400, later) == 1
    assert box.planned_notification(esc.notification_id) is None
    assert box.escalations(active_only=False) == []
    assert box.reached_by(esc.notification_id) == []


def test_a_link_from_an_earlier_incident_does_not_acknowledge_the_next(
    settings: Settings, tmp_path: Path
) -> None:
    app, box = setup(settings, tmp_path)
    clock, seen = Clock(), set[int]()
    post(app, FIRING)
    (old,) = box.escalations()
    resolved = json.loads((FIXTURES / "alertmanager/resolved.json").read_text())
    post(app, {**resolved, "groupKey": FIRING["groupKey"]})
    post(app, FIRING)  # it fires again: a new incident
    (new,) = box.escalations()
    assert new.id != old.id
    new_items(box, seen)
    box.record_ack(old.notification_id, "u-bob", via="page")  # yesterday's link, say
    assert box.escalations() == [new]
    clock.shift = 301
    assert escalator(app, clock).run_once() == 1
    assert [i.userids for i in new_items(box, seen)] == [("u-carol",)]


def test_a_step_posts_to_the_receivers_robots_mentioning_who_it_paged(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_ROBOT_TOKEN", "t0ken")
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        ROUTING.replace("UNTIL", "ack").replace(
            "    escalation: pager\n", "    escalation: pager\n    robots: [team]\n"
        )
        + "robots:\n  team:\n    webhook: https://oapi.dingtalk.com/robot/send?access_token=${TEAM_ROBOT_TOKEN}\n"
    )
    s = settings.with_(routing=str(routing), external_url="https://rx.example/", secret_key=KEY)
    app, box = create_app(s), Outbox(s.data_dir, database_url=s.database_url)
    clock, seen = Clock(), set[int]()
    post(app, FIRING)
    first = new_items(box, seen)
    assert [(i.robot, i.userids) for i in first] == [(None, ("u-bob",)), ("team", ())]
    clock.shift = 301
    assert escalator(app, clock).run_once() == 1
    step1 = new_items(box, seen)
    assert [(i.robot, i.userids) for i in step1] == [(None, ("u-carol",)), ("team", ())]
    copy = step1[1].msg
    assert copy["at"]["atUserIds"] == ["u-carol"]  # only the newly paged
    assert (
        "@u-carol" in copy["markdown"]["text"] and "未确认 5m · u-bob" in copy["markdown"]["text"]
    )
