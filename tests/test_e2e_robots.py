"""End to end: real Alertmanager -> real `serve` -> the fake DingTalk and a fake group robot."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.settings import Settings
from tests.conftest import ROOT, env_for, require_binary
from tests.fakes.dingtalk import APP_KEY, APP_SECRET, FakeDingTalk
from tests.fakes.robot import FakeRobot
from tests.procs import ALERTMANAGER, alertmanager, http, serve

pytestmark = pytest.mark.e2e

TOKEN = "e2e-robot-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SECRET = "SECe2e-robot-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9"

ROUTING = """\
users:
  bob: user0002
robots:
  db-team:
    webhook: ${DB_ROBOT_WEBHOOK}
    secret: ${DB_ROBOT_SECRET}
receivers:
  - name: ops
    users: [manager4220]
  - name: db
    users: [bob]
    robots: [db-team]
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
"""


def test_alertmanager_pages_and_the_group_robot_gets_a_signed_mentioning_copy(
    tmp_path: Path, fake_dingtalk: FakeDingTalk, fake_robot: FakeRobot
) -> None:
    am_bin = require_binary(ALERTMANAGER)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    settings = Settings(data_dir=str(tmp_path / "data"), routing=str(routing),
                        templates=str(ROOT / "templates"), app_key=APP_KEY,
                        app_secret=APP_SECRET, agent_id="424242",
                        api_base=fake_dingtalk.url)  # fmt: skip
    env = env_for(settings, DB_ROBOT_WEBHOOK=fake_robot.add(TOKEN, secret=SECRET),
                  DB_ROBOT_SECRET=SECRET)  # fmt: skip
    summary = "主库复制延迟 42s"
    with serve(env, tmp_path / "serve.log", workers=1) as srv:
        with alertmanager(am_bin, srv.url + "/alertmanager", tmp_path) as am:
            alert = {
                "labels": {"alertname": "ReplicationLag", "team": "db", "severity": "critical"},
                "annotations": {"summary": summary},
                "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            }
            assert http("POST", am + "/api/v2/alerts", [alert])[0] == 200
            assert fake_robot.wait_for(lambda f: len(f.delivered()) >= 1, 30), srv.text()
            assert fake_dingtalk.wait_for(lambda f: len(f.delivered()) >= 1, 30), srv.text()
        sent = 'dingtalk_receiver_robot_posts_total{outcome="sent",robot="db-team"} 1.0'
        deadline = time.monotonic() + 10  # the post is counted just after the fake answers
        status, metrics = http("GET", srv.url + "/metrics")
        while sent not in metrics and time.monotonic() < deadline:
            time.sleep(0.2)
            status, metrics = http("GET", srv.url + "/metrics")
        log = srv.text()
    assert status == 200 and TOKEN not in metrics and SECRET not in metrics
    assert sent in metrics
    page = fake_dingtalk.delivered()[0].body
    assert page is not None and page["userid_list"] == "user0002"
    copy = fake_robot.delivered()[0]
    assert copy.body is not None and copy.body["at"]["atUserIds"] == ["user0002"]
    assert summary in copy.text and copy.text.endswith("@user0002")
    assert "sign" in copy.query and "timestamp" in copy.query  # and the fake verified them
    assert all(p.ok for p in fake_robot.posts)
    assert "robot=db-team" in log
    assert TOKEN not in log and SECRET not in log
