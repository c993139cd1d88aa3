"""`dingtalk-receiver send-test`: one real work notification, against the fake DingTalk."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from receiver.settings import Settings
from tests.conftest import env_for
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.robot import FakeRobot


def test_send_test_sends_one_text_message(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    result = CliRunner(env=env_for(live_settings)).invoke(
        main, ["send-test", "--to", "manager4220", "--text", "你好"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sent: task_id=1001 request_id=req-1001 to=manager4220")
    (req,) = fake_dingtalk.sends()
    assert req.body is not None and req.body["userid_list"] == "manager4220"
    assert re.fullmatch(
        r"你好\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+08:00", req.body["msg"]["text"]["content"]
    )
    # Sent again at once, it is another message: DingTalk would drop the same content.
    runner = CliRunner(env=env_for(live_settings, RECEIVER_TIMEZONE="UTC"))
    for _ in range(2):
        assert runner.invoke(main, ["send-test", "--to", "u1"]).exit_code == 0
    again = [r.body["msg"]["text"]["content"] for r in fake_dingtalk.sends()[1:] if r.body]
    assert len(set(again)) == 2 and all(c.endswith("+00:00") for c in again), again


def test_send_test_says_what_is_wrong(live_settings: Settings, fake_dingtalk: FakeDingTalk) -> None:
    fake_dingtalk.fail("asyncsend_v2", body={"errcode": 60020, "errmsg": "访问ip不在白名单之中"})
    result = CliRunner(env=env_for(live_settings)).invoke(main, ["send-test", "--to", "u1"])
    assert result.exit_code == 1 and "DINGTALK_PROXY" in result.output


def test_send_test_needs_credentials() -> None:
    result = CliRunner(env={"DINGTALK_APP_KEY": None}).invoke(main, ["send-test", "--to", "u1"])
    assert result.exit_code == 1 and "DINGTALK_APP_KEY" in result.output


def test_serve_names_a_malformed_setting() -> None:
    result = CliRunner(env={"RECEIVER_GIVE_UP_AFTER": "soon"}).invoke(main, ["serve"])
    assert result.exit_code == 1 and "RECEIVER_GIVE_UP_AFTER" in result.output
    assert "Traceback" not in result.output


ROBOT_TOKEN = "cli-robot-token-0123456789abcdef"
ROBOT_SECRET = "SECcli-robot-secret-0123456789abcdef"


def robot_env(tmp_path: Path, fake: FakeRobot, msgtype: str = "markdown") -> dict[str, str]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "robots:\n  db-team:\n    webhook: ${W}\n    secret: ${S}\n"
        f"    msgtype: {msgtype}\n"
        "receivers:\n  - name: ops\n    users: [u1]\nroute:\n  receiver: ops\n"
    )
    return {"RECEIVER_ROUTING": str(routing), "DINGTALK_APP_KEY": "",
            "W": fake.add(ROBOT_TOKEN, secret=ROBOT_SECRET), "S": ROBOT_SECRET}  # fmt: skip


@pytest.mark.parametrize("msgtype", ["markdown", "text", "action_card"])
def test_send_test_posts_to_a_robot_without_app_credentials(
    tmp_path: Path, fake_robot: FakeRobot, msgtype: str
) -> None:
    env = robot_env(tmp_path, fake_robot, msgtype)
    result = CliRunner(env=env).invoke(main, ["send-test", "--robot", "db-team", "--text", "告警"])
    assert result.exit_code == 0, result.output
    assert result.output == f"posted: robot=db-team msgtype={msgtype}\n"
    (post,) = fake_robot.delivered()
    assert post.text.startswith("告警\n") and post.body is not None
    assert post.body["msgtype"] == {"action_card": "actionCard"}.get(msgtype, msgtype)


def test_send_test_robot_says_what_to_fix_and_keeps_secrets(
    tmp_path: Path, fake_robot: FakeRobot
) -> None:
    env = robot_env(tmp_path, fake_robot)
    fake_robot.fail(body={"errcode": 310000, "errmsg": "keywords not in content"})
    result = CliRunner(env=env).invoke(main, ["send-test", "--robot", "db-team"])
    assert result.exit_code == 1 and "关键词" in result.output and "310000" in result.output
    assert ROBOT_TOKEN not in result.output and ROBOT_SECRET not in result.output
    unknown = CliRunner(env=env).invoke(main, ["send-test", "--robot", "nope"])
    assert unknown.exit_code == 1 and "no robot 'nope'" in unknown.output
    assert "(robots: db-team)" in unknown.output


def test_send_test_needs_to_or_robot() -> None:
    result = CliRunner().invoke(main, ["send-test"])
    assert result.exit_code == 2 and "--to USERID or --robot NAME" in result.output
