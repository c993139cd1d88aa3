"""routing.yaml's robots: and ${VAR}: strict, with FILE:LINE, and no secret in any output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from receiver.errors import ConfigError
from receiver.routing import load_routing
from receiver.routing.table import RoutingTable
from tests.conftest import ROOT

TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
SECRET = "SECfedcba9876543210fedcba9876543210fedcba9876543210fedcba98765432"
ENV = {"DB_ROBOT_TOKEN": TOKEN, "DB_ROBOT_SECRET": SECRET, "TEAM": "db"}

GOOD = """\
robots:
  db-team:
    webhook: https://oapi.dingtalk.com/robot/send?access_token=${DB_ROBOT_TOKEN}
    secret: ${DB_ROBOT_SECRET}
  ops-team:
    webhook: "https://oapi.dingtalk.com/robot/send?access_token=literal-token"
    msgtype: text
receivers:
  - name: db
    users: [u1]
    robots: [db-team, ops-team]
  - name: ops
    users: [u2]
route:
  receiver: ops
  routes:
    - matchers: ['team="${TEAM}"']
      receiver: db
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> RoutingTable:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_routing(str(path), env=ENV if env is None else env)


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text, env)
    return [f"{p.line}: {p.message}" for p in e.value.problems]


def test_robots_and_variables_load(tmp_path: Path) -> None:
    table = load(tmp_path, GOOD)
    db = table.robots["db-team"]
    assert db.webhook.endswith(f"access_token={TOKEN}") and db.secret == SECRET
    assert db.msgtype == "markdown" and table.robots["ops-team"].msgtype == "text"
    assert table.receivers["db"].robots == ("db-team", "ops-team")
    assert table.receivers["ops"].robots == ()
    assert table.match({"team": "db"}) == ["db"]  # ${TEAM} in a matcher, too


def test_the_process_environment_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD)
    assert load_routing(str(path)).robots["db-team"].secret == SECRET


def test_an_unset_variable_names_itself_at_its_line(tmp_path: Path) -> None:
    assert problems(tmp_path, GOOD, {"DB_ROBOT_TOKEN": TOKEN, "TEAM": "db"}) == [
        "4: environment variable DB_ROBOT_SECRET is not set (used as ${DB_ROBOT_SECRET})"
    ]


def test_escapes_and_bad_names(tmp_path: Path) -> None:
    text = GOOD.replace("users: [u2]", "users: ['$${NOT_A_VAR}', '${bad-name}', 'a$b']")
    assert problems(tmp_path, text) == [
        "13: ${bad-name} is not a variable name (letters, digits and _)"
    ]
    table = load(tmp_path, GOOD.replace("users: [u2]", "users: ['$${NOT_A_VAR}', 'a$b']"))
    assert table.receivers["ops"].users == ("${NOT_A_VAR}", "a$b")


BAD = """\
robots:
  a:
    webhook: ftp://oapi.dingtalk.com/robot/send?access_token=x
    msgtype: oa
    colour: red
  b:
    webhook: http://oapi.dingtalk.com/robot/send?access_token=${DB_ROBOT_TOKEN}
  c:
    webhook: https://oapi.dingtalk.com/robot/send
  d:
    secret: ${DB_ROBOT_SECRET}
  e: just-a-string
receivers:
  - name: ops
    robots: [a, nope]
route:
  receiver: ops
"""


def test_every_robot_problem_at_its_line(tmp_path: Path) -> None:
    assert problems(tmp_path, BAD) == [
        "3: robot 'a' webhook must be an https:// URL (copy the robot's whole Webhook URL)",
        "4: robot 'a' msgtype must be one of markdown, text, action_card",
        "5: unknown key 'colour' in robot 'a' (known: webhook, secret, msgtype)",
        "7: robot 'b' webhook must use https: the URL carries the robot's access_token",
        "9: robot 'c' webhook has no access_token=… (copy the robot's whole Webhook URL)",
        "11: robot 'd' needs 'webhook'",
        "12: robot 'e' must be a mapping",
        "15: undefined robot 'nope' (define it under robots:)",
    ]


def test_no_problem_prints_an_interpolated_value(tmp_path: Path) -> None:
    text = GOOD.replace("receiver: db", "receiver: ${DB_ROBOT_TOKEN}").replace(
        "robots: [db-team, ops-team]", "robots: [db-team, '${DB_ROBOT_SECRET}']"
    )
    found = problems(tmp_path, text)
    assert "11: undefined robot '${DB_ROBOT_SECRET}' (define it under robots:)" in found
    assert "18: undefined receiver '${DB_ROBOT_TOKEN}'" in found
    assert not any(TOKEN in p or SECRET in p for p in found)


def test_check_config_never_prints_a_robot_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "routing.yaml"
    path.write_text(GOOD.replace("secret: ${DB_ROBOT_SECRET}", "secret: ${DB_ROBOT_SECRET}x"))
    env = {**ENV, "RECEIVER_DATA_DIR": str(tmp_path)}
    runner = CliRunner(env=env)
    args = ["check-config", "--routing", str(path), "--templates", str(ROOT / "templates")]
    ok = runner.invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert "2 robots" in ok.output
    path.write_text(GOOD.replace("receiver: db", "receiver: ${DB_ROBOT_TOKEN}"))
    bad = runner.invoke(main, args)
    assert bad.exit_code == 1 and "${DB_ROBOT_TOKEN}" in bad.output
    for text in (ok.output, bad.output, caplog.text, repr(load(tmp_path, GOOD))):
        assert TOKEN not in text and SECRET not in text


def test_a_secret_that_is_not_sec_warns(tmp_path: Path) -> None:
    table = load(tmp_path, GOOD, {**ENV, "DB_ROBOT_SECRET": "not-the-secret"})
    assert [w.message for w in table.warnings if "SEC" in w.message] == [
        "warning: robot 'db-team': a 加签 secret starts with SEC; is this the right one?"
    ]
