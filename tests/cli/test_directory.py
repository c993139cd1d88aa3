"""`sync-users`, `users find`, and routes resolved through the synced directory."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from receiver import routing
from receiver.cli.main import main
from receiver.directory.store import DirectoryStore
from receiver.settings import Settings
from tests.conftest import ROOT, env_for
from tests.fakes import directory as people
from tests.fakes.dingtalk import FakeDingTalk


def env_of(s: Settings) -> dict[str, str | None]:
    return {**env_for(s, RECEIVER_DIRECTORY_QPS="0")}  # no spacing between calls in tests


@pytest.fixture
def cli(live_settings: Settings, fake_dingtalk: FakeDingTalk) -> CliRunner:
    fake_dingtalk.directory = people.company()
    return CliRunner(env=env_of(live_settings))


def invoke(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(main, list(args), catch_exceptions=False)


def test_sync_users_then_find(cli: CliRunner, live_settings: Settings) -> None:
    synced = invoke(cli, "sync-users", "--no-progress")
    assert synced.exit_code == 0, synced.output
    assert f"synced 6 departments and {people.TOTAL_USERS} users" in synced.stdout
    assert synced.stderr == ""

    found = invoke(cli, "users", "find", "张三")
    assert found.exit_code == 0
    assert found.stdout.splitlines() == [
        "manager4220\t张三\t13800000001\tAlice@Example.com\tDBA lead\tEngineering, SRE"
    ]
    assert "1 found (directory synced " in found.stderr


@pytest.mark.parametrize(
    ("text", "userids"),
    [
        ("+86 139 0000 0002", ["user0002"]),
        ("example.com", ["boss", "manager4220", "user0002"]),
        ("李四", ["user0004", "user0005"]),
    ],
)
def test_users_find_json(cli: CliRunner, text: str, userids: list[str]) -> None:
    invoke(cli, "sync-users", "--no-progress")
    result = invoke(cli, "users", "find", "--json", text)
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert sorted(u["userid"] for u in found) == userids
    assert set(found[0]) == {
        "userid",
        "name",
        "mobile",
        "email",
        "title",
        "departments",
        "active",
    }


def test_users_find_marks_inactive_people(cli: CliRunner) -> None:
    invoke(cli, "sync-users", "--no-progress")
    result = invoke(cli, "users", "find", "13700000005")
    assert result.stdout.strip().endswith("(inactive)")


def test_users_find_no_match_exits_1(cli: CliRunner) -> None:
    invoke(cli, "sync-users", "--no-progress")
    result = invoke(cli, "users", "find", "nobody-here")
    assert result.exit_code == 1
    assert result.stdout == "" and "0 found" in result.stderr


def test_users_find_before_any_sync(cli: CliRunner) -> None:
    result = invoke(cli, "users", "find", "bob")
    assert result.exit_code == 1
    assert "no directory synced yet: run `dingtalk-receiver sync-users` first" in result.stderr


def test_sync_users_shows_progress(cli: CliRunner) -> None:
    result = invoke(cli, "sync-users", "--progress")
    assert result.exit_code == 0
    assert "departments: 6 found" in result.stderr
    assert f"departments: 6/6 listed, users: {people.TOTAL_USERS}" in result.stderr


def test_sync_users_without_credentials(settings: Settings) -> None:
    runner = CliRunner(env={**env_of(settings), "DINGTALK_APP_KEY": None})
    result = runner.invoke(main, ["sync-users"])
    assert result.exit_code == 1
    assert "sync-users needs DINGTALK_APP_KEY" in result.stderr


def test_sync_users_failure_says_the_old_directory_is_kept(
    cli: CliRunner, fake_dingtalk: FakeDingTalk, live_settings: Settings
) -> None:
    invoke(cli, "sync-users", "--no-progress")
    fake_dingtalk.fail("list", times=1, body={"errcode": 60011, "errmsg": "no permission"}, after=2)
    result = invoke(cli, "sync-users", "--no-progress")
    assert result.exit_code == 1
    assert "qyapi_get_department_member" in result.stderr
    assert "the previous directory is kept" in result.stderr
    assert DirectoryStore(live_settings.data_dir).find("name", "Bob") == ["user0002"]


def test_sync_users_warns_when_no_mobile_comes_back(
    cli: CliRunner, fake_dingtalk: FakeDingTalk
) -> None:
    for members in fake_dingtalk.directory.members.values():
        for user in members:
            user.pop("mobile", None)
    result = invoke(cli, "sync-users", "--no-progress")
    assert result.exit_code == 0
    assert "no user came with a mobile number" in result.stderr


# -- the walk-through in docs/directory.md, run as written ---------------------------------
DOC = Path(__file__).resolve().parents[2] / "docs" / "directory.md"


def doc_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def doc_commands(prefix: str) -> list[tuple[list[str], list[str]]]:
    """(argv, the output lines shown) for each `$ dingtalk-receiver PREFIX…` in the doc."""
    found = []
    for block in doc_blocks("console"):
        for cmd in re.split(r"^\$ ", block, flags=re.M)[1:]:
            first, *shown = cmd.splitlines()
            if first.startswith(f"dingtalk-receiver {prefix}"):
                found.append((shlex.split(first)[1:], shown))
    return found


ROUTING = doc_blocks("yaml")[0]


def test_the_doc_has_its_examples() -> None:
    assert len(doc_commands("users find")) == 2 and len(doc_commands("routes test")) == 1
    assert "{mobile:" in ROUTING and "{email:" in ROUTING and "{name:" in ROUTING


@pytest.mark.parametrize(("argv", "shown"), doc_commands("users find"))
def test_doc_users_find(cli: CliRunner, argv: list[str], shown: list[str]) -> None:
    invoke(cli, "sync-users", "--no-progress")
    result = invoke(cli, *argv)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [line for line in shown if " found (" not in line]
    assert [line for line in shown if " found (" in line][0].split(" (")[0] in result.stderr


# -- the done-when: sync-users, then routes test resolves people -------------------
def test_load_routing_resolves_aliases_through_the_store(
    cli: CliRunner, live_settings: Settings, tmp_path: Path
) -> None:
    invoke(cli, "sync-users", "--no-progress")
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING, encoding="utf-8")
    store = DirectoryStore(live_settings.data_dir)
    table = routing.load_routing(str(path), directory=store)
    assert table.recipients("db").userids == ("manager4220", "boss")
    assert table.recipients("ops").userids == ("user0002", "user0003")


def test_routes_test_resolves_people_after_sync_users(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, tmp_path: Path
) -> None:
    """As docs/directory.md shows it: sync-users, then routes test, with RECEIVER_ROUTING."""
    fake_dingtalk.directory = people.company()
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING, encoding="utf-8")
    cli = CliRunner(env={**env_of(live_settings), "RECEIVER_ROUTING": str(path)})
    assert invoke(cli, "sync-users", "--no-progress").exit_code == 0

    ((argv, shown),) = doc_commands("routes test")
    db = invoke(cli, *argv)
    assert db.exit_code == 0, db.output
    expected = json.loads(shown[0])  # the contract's keys; the rest is docs/routing.md's
    assert {k: json.loads(db.stdout)[k] for k in expected} == expected
    assert json.loads(db.stdout)["userids"] == ["manager4220", "boss"]  # by mobile and name
    ops = invoke(cli, "routes", "test", "--json", "team=web")
    assert json.loads(ops.stdout)["userids"] == ["user0002", "user0003"]  # by email, raw


LOOKUP_ROUTING = """\
users:
  twins: {name: 李四}
  ghost: {email: nobody@example.com}
  alice: {mobile: "+86 138-0000-0001"}
receivers:
  - name: ops
    users: [alice, twins, ghost]
route:
  receiver: ops
"""


def test_check_config_before_sync_warns_then_errors_after(
    cli: CliRunner, live_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(LOOKUP_ROUTING, encoding="utf-8")
    before = invoke(
        cli, "check-config", "--routing", str(path), "--templates", str(ROOT / "templates")
    )
    assert before.exit_code == 0, before.output
    assert "needs the synced directory" in before.stderr

    invoke(cli, "sync-users", "--no-progress")
    after = invoke(
        cli, "check-config", "--routing", str(path), "--templates", str(ROOT / "templates")
    )
    assert after.exit_code == 1
    errors = after.stderr.splitlines()
    assert f"{path}:2: alias 'twins': 2 people have name '李四':" in errors[0]
    assert "user0004" in errors[0] and "user0005" in errors[0]
    assert (
        errors[1]
        == f"{path}:3: alias 'ghost': no one in the directory has email 'nobody@example.com'"
    )
    assert len(errors) == 2  # alice's mobile is found, written with +86 and dashes


def test_serve_only_warns_about_lookups(
    cli: CliRunner, live_settings: Settings, tmp_path: Path
) -> None:
    """A leaver must not stop paging: serve loads the table and pages whoever is found."""
    invoke(cli, "sync-users", "--no-progress")
    path = tmp_path / "routing.yaml"
    path.write_text(LOOKUP_ROUTING, encoding="utf-8")
    table = routing.load_routing(str(path), DirectoryStore(live_settings.data_dir))
    assert len(table.warnings) == 2
    assert table.recipients("ops").userids == ("manager4220", "user0004", "user0005")
