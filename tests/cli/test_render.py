"""`dingtalk-receiver render`: what a user sees for each fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from receiver.cli.main import main
from receiver.messages.render import msg_size
from tests.render_support import FIXTURES, TEMPLATES

ROUTING = """\
users:
  alice: manager4220
  bob: user0002
receivers:
  - name: ops
    users: [alice]
  - name: db
    users: [bob, alice]
    departments: [12345]
route:
  receiver: ops
  routes:
    - matchers: ['severity="critical"']
      receiver: db
"""
AT = "2026-11-28T03:19:15Z"


@pytest.fixture
def routing(tmp_path: Path) -> str:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING, encoding="utf-8")
    return str(path)


def run(*args: str, routing: str | None = None) -> Result:
    env = {"RECEIVER_TEMPLATES": TEMPLATES, "RECEIVER_ROUTING": routing or "/nonexistent.yaml"}
    return CliRunner().invoke(main, ["render", *args], env=env)


def messages(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["max_bytes"] == 2048
    return list(out["messages"])


def test_routed_55_alerts_json(routing: str) -> None:
    path = str(FIXTURES / "am-firing-55.json")
    (m,) = messages(run("--payload", path, "--at", AT, "--json", routing=routing))
    assert (m["receiver"], m["userids"], m["departments"]) == (
        "db",
        ["user0002", "manager4220"],
        [12345],
    )
    assert m["bytes"] == msg_size(m["msg"]) <= 2048
    assert m["msg"]["markdown"]["title"] == "[告警:55] HighLatency"
    assert "条告警未显示" in m["msg"]["markdown"]["text"]


def test_named_receiver(routing: str) -> None:
    path = str(FIXTURES / "am-firing-1.json")
    (m,) = messages(
        run("--payload", path, "--receiver", "ops", "--at", AT, "--json", routing=routing)
    )
    assert (m["receiver"], m["userids"]) == ("ops", ["manager4220"])
    assert m["msg"]["markdown"]["text"].endswith("###### 2026-11-28 11:19:15 · bece9a78")


def test_human_output_shows_sizes_and_the_text(routing: str) -> None:
    result = run("--payload", str(FIXTURES / "am-hostile.json"), "--at", AT, routing=routing)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("# message 1/1  receiver: ops  userids: manager4220  departments: -")
    size = int(first.rsplit("bytes: ", 1)[1].split("/")[0])
    assert 0 < size <= 2048 and first.endswith("/2048")
    assert "# as read:\n### \\[告警:1\\] 磁盘\\_空间\\*不足\n" in result.output


@pytest.mark.parametrize("msgtype", ["markdown", "text", "action_card"])
def test_direct_render_of_a_10kb_annotation(msgtype: str) -> None:
    path = str(FIXTURES / "am-huge-annotation.json")
    (m,) = messages(run("--payload", path, "--msgtype", msgtype, "--at", AT, "--json"))
    assert m["receiver"] == "-" and m["msg"]["msgtype"] == msgtype
    assert m["bytes"] == msg_size(m["msg"]) <= 2048


def test_budget_setting_is_honoured(routing: str) -> None:
    path = str(FIXTURES / "am-firing-55.json")
    result = CliRunner().invoke(
        main,
        ["render", "--payload", path, "--msgtype", "text", "--at", AT, "--json"],
        env={"RECEIVER_TEMPLATES": TEMPLATES, "RECEIVER_MAX_MESSAGE_BYTES": "700"},
    )
    out = json.loads(result.output)
    assert out["max_bytes"] == 700 and out["messages"][0]["bytes"] <= 700


def test_same_time_same_output(routing: str) -> None:
    args = ("--payload", str(FIXTURES / "am-mixed.json"), "--at", AT)
    assert run(*args, routing=routing).output == run(*args, routing=routing).output


def test_grafana(routing: str) -> None:
    result = run(
        "--payload",
        str(FIXTURES / "grafana-firing.json"),
        "--source",
        "grafana",
        "--msgtype",
        "markdown",
        "--at",
        AT,
        "--json",
    )
    assert result.exit_code == 0, result.output
    (m,) = messages(result)
    assert "数值: A=96.2, B=1" in m["msg"]["markdown"]["text"]


def test_errors(routing: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "4", "alerts": [', encoding="utf-8")
    result = run("--payload", str(bad), routing=routing)
    assert (
        result.exit_code == 1
        and "bad.json: $: invalid JSON: Expecting value at line 1 column 29" in result.output
    )
    ok = str(FIXTURES / "am-firing-1.json")
    result = run("--payload", ok, "--receiver", "nobody", routing=routing)
    assert result.exit_code == 1 and "no receiver 'nobody'" in result.output
    result = run("--payload", ok, "--at", "yesterday", routing=routing)
    assert result.exit_code == 2 and "not an ISO 8601 time" in result.output
    result = run("--payload", ok)
    assert result.exit_code == 1 and "/nonexistent.yaml:0: cannot read" in result.output


def test_a_robot_copy_is_shown_with_its_own_budget(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        ROUTING.replace("    departments: [12345]\n", "    robots: [db-team]\n")
        + "robots:\n  db-team:\n    webhook: https://oapi.dingtalk.com/robot/send?access_token=t\n",
        encoding="utf-8",
    )
    payload = str(FIXTURES / "am-firing-55.json")
    page, copy = messages(run("--payload", payload, "--at", AT, "--json", routing=str(path)))
    assert "robot" not in page and page["bytes"] <= 2048
    assert copy["robot"] == "db-team" and copy["userids"] == []
    assert 2048 < copy["bytes"] <= 20_000
    assert copy["msg"]["at"]["atUserIds"] == ["user0002", "manager4220"]
    human = run("--payload", payload, "--at", AT, routing=str(path))
    header = human.output.split("# message 2/2  ", 1)[1].splitlines()[0]
    assert header.startswith("receiver: db  robot: db-team  bytes: ") and header.endswith("/20000")
    assert "@user0002 @manager4220" in human.output
