"""`dingtalk-receiver send-test`: one real work notification, against the fake DingTalk."""

from __future__ import annotations

from click.testing import CliRunner

from receiver.cli.main import main
from receiver.settings import Settings
from tests.conftest import env_for
from tests.fakes.dingtalk import FakeDingTalk


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
    assert req.body["msg"]["text"]["content"].startswith("你好\n")


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
