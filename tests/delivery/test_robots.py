"""Robot copies through the outbox and the worker: signed, @mentioning, within the rate,
merged in a storm, and never in the way of a person's page."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from receiver.delivery.outbox import Item, Outbox
from receiver.delivery.process import make_worker
from receiver.delivery.worker import Worker
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.robot import FakeRobot

TOKEN = "robot-token-0123456789abcdef0123456789abcdef"
SECRET = "SECrobot-secret-0123456789abcdef0123456789abcdef"
FIRING = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())

ROUTING = """\
users:
  alice: manager4220
  bob: user0002
robots:
  db-team:
    webhook: ${ROBOT_WEBHOOK}
    secret: ${ROBOT_SECRET}
receivers:
  - name: ops
    users: [alice]
  - name: db
    users: [bob]
    robots: [db-team]
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
"""


@pytest.fixture
def robot_settings(
    live_settings: Settings, fake_robot: FakeRobot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    monkeypatch.setenv("ROBOT_WEBHOOK", fake_robot.add(TOKEN, secret=SECRET))
    monkeypatch.setenv("ROBOT_SECRET", SECRET)
    return live_settings.with_(routing=str(routing))


def post(settings: Settings, alertname: str = "HighLatency", team: str = "db") -> None:
    body = json.loads(json.dumps(FIRING))
    for where in (body["alerts"][0]["labels"], body["commonLabels"], body["groupLabels"]):
        where["alertname"] = alertname
    body["alerts"][0]["labels"]["team"] = body["commonLabels"]["team"] = team
    body["alerts"][0]["fingerprint"] = f"fp-{alertname}"
    body["groupKey"] = f'{{}}:{{alertname="{alertname}"}}'  # as Alertmanager groups them
    res = create_app(settings).test_client().post("/alertmanager", json=body)
    assert res.status_code == 200


def drain(worker: Worker, rounds: int = 50) -> None:
    """Plan everything first (as after a burst), then send until nothing is due."""
    assert worker.plan is not None
    while worker.plan():
        pass
    for _ in range(rounds):
        if not worker.send_batch():
            return


def robot_items(box: Outbox) -> list[Item]:
    return [i for i in box.items() if i.channel == "robot"]


def test_a_page_and_a_signed_copy_that_mentions_who_was_paged(
    robot_settings: Settings, fake_dingtalk: FakeDingTalk, fake_robot: FakeRobot
) -> None:
    post(robot_settings)
    drain(make_worker(robot_settings))
    (page,) = fake_dingtalk.delivered()
    assert page.body is not None and page.body["userid_list"] == "user0002"
    (copy,) = fake_robot.delivered()  # the fake checked the token and the signature
    assert copy.body is not None and copy.body["at"] == {"atUserIds": ["user0002"],
                                                         "isAtAll": False}  # fmt: skip
    assert copy.body["markdown"]["title"] == "[告警:1] HighLatency"
    assert copy.text.endswith("@user0002") and "API p99 latency above 2s" in copy.text
    assert set(copy.query) == {"access_token", "timestamp", "sign"}
    (item,) = robot_items(Outbox(robot_settings.data_dir))
    assert (item.state, item.robot, item.userids, item.receiver) == ("sent", "db-team", (), "db")


def test_a_receiver_without_robots_posts_nothing(
    robot_settings: Settings, fake_dingtalk: FakeDingTalk, fake_robot: FakeRobot
) -> None:
    post(robot_settings, team="web")
    drain(make_worker(robot_settings))
    assert len(fake_dingtalk.delivered()) == 1 and fake_robot.posts == []


def test_a_failing_robot_never_holds_up_a_page(
    robot_settings: Settings, fake_dingtalk: FakeDingTalk, fake_robot: FakeRobot
) -> None:
    fake_robot.fail(times=1000, status=502)
    for i in range(3):
        post(robot_settings, f"A{i}")
    drain(make_worker(robot_settings), rounds=1)  # one batch: each item tried once
    assert [r.body["userid_list"] for r in fake_dingtalk.delivered() if r.body] == ["user0002"] * 3
    box = Outbox(robot_settings.data_dir)
    assert {i.state for i in box.items() if i.channel == "work"} == {"sent"}
    assert {i.state for i in robot_items(box)} == {"retry"}
    assert all(i.last_error == "robot db-team: HTTP 502" for i in robot_items(box))


@pytest.mark.parametrize(
    ("reply", "state", "words"),
    [
        ({"errcode": 310000, "errmsg": "keywords not in content"}, "dead", "关键词"),
        ({"errcode": 300001, "errmsg": "token is not exist"}, "dead", "Webhook URL"),
        ({"errcode": 410100, "errmsg": "send too fast"}, "retry", "10 minutes"),
        ({"errcode": -1, "errmsg": "busy"}, "retry", "busy"),
    ],
)
def test_each_errcode_class_through_the_worker(
    robot_settings: Settings,
    fake_dingtalk: FakeDingTalk,
    fake_robot: FakeRobot,
    reply: dict[str, object],
    state: str,
    words: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_robot.fail(times=1, body=reply)
    post(robot_settings)
    started = time.time()
    drain(make_worker(robot_settings))
    (item,) = robot_items(Outbox(robot_settings.data_dir))
    assert item.state == state and words in (item.last_error or "")
    assert item.errcode == reply["errcode"]
    if reply["errcode"] == 410100:  # DingTalk's block: nothing before 10 minutes
        assert item.next_attempt_at >= started + 590
        post(robot_settings, "Another")
        drain(make_worker(robot_settings))
        held = [i for i in robot_items(Outbox(robot_settings.data_dir)) if i.hold_reason]
        assert len(held) == 1 and held[0].next_attempt_at >= started + 590
        assert len(fake_robot.posts) == 1  # the limiter kept the second one back
    assert TOKEN not in caplog.text and SECRET not in caplog.text
    assert len(fake_dingtalk.delivered()) >= 1  # the page went out regardless


def test_a_storm_of_30_stays_under_the_limit_and_loses_nothing(
    robot_settings: Settings, fake_dingtalk: FakeDingTalk, fake_robot: FakeRobot
) -> None:
    names = [f"Storm{i:02d}" for i in range(30)]
    for name in names:
        post(robot_settings, name)
    worker = make_worker(robot_settings)
    t0 = time.time()  # the limiter's clock, pinned: a slow machine sees the same minute
    worker.channels["robot"].clock = lambda: t0  # type: ignore[attr-defined]
    drain(worker)
    assert len(fake_dingtalk.delivered()) == 30  # every page
    posts = fake_robot.posts
    assert all(p.ok for p in posts), [p.reply for p in posts]  # never a 410100
    assert len(posts) == robot_settings.robot_per_minute == 18
    # The first 17 went alone; the 18th is the digest of the other 13, oldest first.
    for name, p in zip(names[:17], posts[:17], strict=True):
        assert p.body is not None and p.body["markdown"]["title"] == f"[告警:1] {name}"
    last = posts[17]
    assert last.body is not None and last.body["markdown"]["title"] == "[告警:1] Storm17 (+12)"
    assert [last.text.index(f"Storm{i}") for i in range(17, 30)] == sorted(
        last.text.index(f"Storm{i}") for i in range(17, 30)
    )
    assert last.body["at"]["atUserIds"] == ["user0002"]
    box = Outbox(robot_settings.data_dir)
    items = robot_items(box)
    assert len(items) == 30 and {i.state for i in items} == {"sent"}
    merged = [i for i in items if (i.last_error or "").startswith("merged into #")]
    assert len(merged) == 12
    carrier = int((merged[0].last_error or "").rsplit("#", 1)[1])
    assert [h["outcome"] for h in box.history(carrier)][-2:] == ["digest", "sent"]
    # One more alert inside the same minute: held for the robot, the page not.
    post(robot_settings, "Late")
    drain(worker)
    assert len(fake_dingtalk.delivered()) == 31 and len(fake_robot.posts) == 18
    (late,) = [i for i in robot_items(Outbox(robot_settings.data_dir)) if i.state == "queued"]
    assert late.hold_reason == "robot db-team: 18 posts a minute"


class Exploding:
    def post(self, robot: object, body: object) -> None:
        raise ValueError(f"boom {TOKEN}")


def test_a_surprise_in_the_robot_sender_is_retried_and_does_not_leak(
    robot_settings: Settings, fake_dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    post(robot_settings)
    worker = make_worker(robot_settings)
    worker.channels["robot"].poster = Exploding()  # type: ignore[attr-defined]
    drain(worker, rounds=1)
    (item,) = robot_items(Outbox(robot_settings.data_dir))
    assert item.state == "retry" and "unexpected ValueError at" in (item.last_error or "")
    assert TOKEN not in caplog.text and TOKEN not in (item.last_error or "")
    assert len(fake_dingtalk.delivered()) == 1
