"""`dingtalk-receiver outbox`: list, show, retry, purge, as an operator runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry

MSG = {"msgtype": "text", "text": {"content": "磁盘满了"}}


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outbox:
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path))
    box = Outbox(str(tmp_path))
    ids = [
        box.enqueue([Entry("ops", MSG, (u,))], source="alertmanager", group_key="g")[0]
        for u in ("alice", "bob", "carol")
    ]
    box.claim()
    box.mark_sent(ids[0], [1001])
    box.mark_retry(ids[1], delay_s=60, error="DingTalk …: HTTP 500", errcode=None)
    box.mark_dead(ids[2], error="DingTalk errcode 40035: 缺少参数", errcode=40035)
    box.accept(b"{}", source="grafana", receiver=None, group_key="g")  # not planned yet
    return box


def run(*args: str) -> tuple[int, str]:
    """Exit code and what the user reads: stdout, or stderr's error (without the
    `outbox: PATH` line every command starts with)."""
    result = CliRunner().invoke(main, ["outbox", *args])
    err = "".join(
        line for line in result.stderr.splitlines(True) if not line.startswith("outbox: ")
    )
    return result.exit_code, result.stdout + err


def test_list(box: Outbox) -> None:
    code, out = run("list")
    assert code == 0
    assert out.splitlines()[0] == (
        "pending=1 queued=0 sending=0 sent=1 retry=1 dead=1 superseded=0 dry_run=0"
    )
    assert len(out.splitlines()) == 5
    assert "p1 pending attempts=0" in out.splitlines()[1] and "(route tree)" in out
    code, out = run("list", "--state", "pending")
    assert code == 0 and len(out.splitlines()) == 2 and "grafana" in out
    code, out = run("list", "--state", "dead")
    assert code == 0 and "carol" in out and "[40035]" in out and "alice" not in out


def test_show_has_message_recipients_attempts_and_errors(box: Outbox) -> None:
    code, out = run("show", "3")
    assert code == 0
    assert "recipients:  carol" in out and "磁盘满了" in out
    assert "dead [40035] DingTalk errcode 40035: 缺少参数" in out
    assert run("show", "99") == (1, "Error: no item 99\n")


def test_retry_one_and_all_dead(box: Outbox) -> None:
    assert run("retry", "3") == (0, "requeued 1\n")
    assert box.counts()["queued"] == 1
    assert run("retry", "1")[0] == 1  # a sent item is not sent again by accident
    box.claim()
    assert run("retry", "--dead") == (0, "requeued 0\n")
    assert run("retry")[0] == 2


def test_a_pending_webhook_that_cannot_be_planned_can_be_replanned_or_dropped(
    box: Outbox,
) -> None:
    (p,) = box.pending()
    box.defer(p.id, error="KeyError: unknown receiver 'gone'", delay_s=600)
    assert box.due_pending() == []
    assert run("retry", f"p{p.id}") == (0, f"replanning p{p.id}\n")
    (again,) = box.due_pending()  # at the next poll, its backoff started afresh
    assert again.id == p.id and again.attempts == 0
    assert run("retry", "p99")[0] == 1
    assert run("retry", "x1")[0] == 2
    code, out = run("drop", f"p{p.id}")
    assert code == 0 and out.startswith(f"dropped p{p.id}: grafana (route tree) accepted")
    assert box.pending() == [] and box.counts()["pending"] == 0
    assert run("drop", f"p{p.id}")[0] == 1  # gone
    assert run("drop", "x3")[0] == 2


def test_drop_gives_up_a_dead_or_held_item_and_nothing_else(box: Outbox) -> None:
    assert run("drop", "1") == (1, "Error: item 1 is not dead or held\n")  # sent
    assert run("drop", "2")[0] == 1  # retrying: retry it, or let it die
    code, out = run("drop", "3")
    assert code == 0 and out.startswith("dropped 3: dead ops -> carol, 1 attempts; last error:")
    assert box.get(3) is None and box.history(3) == []
    (held,) = box.enqueue([Entry("ops", MSG, ("dave",))], source="alertmanager", group_key="g")
    box.claim()
    box.hold(held, until=9e9, reason="over the per-user daily limit")
    assert run("drop", str(held))[0] == 0 and box.get(held) is None
    assert run("drop", "3")[0] == 1  # gone


def test_purge(box: Outbox) -> None:
    assert run("purge", "--sent-older-than", "7d") == (0, "purged 0\n")
    assert run("purge", "--sent-older-than", "0s") == (0, "purged 1\n")
    assert box.get(1) is None and box.counts()["dead"] == 1
    assert run("purge", "--sent-older-than", "soon")[0] == 2


def test_a_robot_copy_shows_its_robot_and_mentions(box: Outbox) -> None:
    body = {**MSG, "at": {"atUserIds": ["alice", "bob"], "isAtAll": False}}
    (rid,) = box.enqueue([Entry("db", body, (), robot="db-team")], source="alertmanager",
                         group_key="g")  # fmt: skip
    box.claim()
    box.mark_dead(rid, error="robot db-team: DingTalk errcode 300001: token is not exist",
                  errcode=300001)  # fmt: skip
    code, out = run("list", "--state", "dead")
    assert code == 0 and f"{rid} dead" in out and "db -> robot:db-team @alice @bob" in out
    assert run("retry", "--dead")[0] == 0
    item = box.get(rid)
    assert item is not None and item.state == "queued" and item.channel == "robot"


def test_list_says_why_each_item_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path))
    box = Outbox(str(tmp_path))

    def item(group: str, *users: str) -> int:
        return box.enqueue([Entry("ops", MSG, users)], source="am", group_key=group)[0]

    failing, behind, newer = item("g", "alice", "bob"), item("g", "alice"), item("h", "carol")
    replaced = item("h", "carol")  # a newer state of group h for carol
    box.claim(limit=1)
    box.mark_retry(failing, delay_s=600, error="DingTalk errcode -1: busy", errcode=-1)
    box.claim()  # supersedes `newer` by `replaced`, and sends nothing more
    lines = {int(ln.split()[0]): ln for ln in run("list")[1].splitlines()[1:]}
    assert "backoff until" in lines[failing]
    assert f"waits behind #{failing} (same alert group and recipient)" in lines[behind]
    assert f"superseded by #{replaced}" in lines[newer]
    box.pause(reason="http_5xx", error="HTTP 502", probe_in=5, item_id=replaced)
    box.release(replaced)
    out = run("list")[1]
    assert "sending paused since" in out and "(http_5xx): HTTP 502; next probe" in out
    assert "waits for the pause to end" in out
    code, shown = run("show", str(newer))
    assert code == 0 and f"superseded:  by #{replaced}" in shown


def test_show_says_a_call_that_started_may_have_gone_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #22: the outbox records "call started" before the call; a crash after it is
    visible, so the resend is explained."""
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path))
    box = Outbox(str(tmp_path))
    (a,) = box.enqueue([Entry("ops", MSG, ("alice",))], source="am", group_key="g")
    box.claim(owner="host:1:1")
    assert box.start_call(a, "host:1:1", 60)
    assert "call started" in run("list")[1]
    assert box.release_owner("host:1:1") == 1  # its claimer died: the call's fate is unknown
    code, out = run("show", str(a))
    assert code == 0 and "no answer recorded: it may have reached DingTalk" in out
    assert "recovered its claimer died after the call started" in out


@pytest.mark.parametrize("args", [["list"], ["show", "1"], ["retry", "--dead"], ["purge",
                                  "--sent-older-than", "7d"]])  # fmt: skip
def test_every_command_names_the_file_it_reads(box: Outbox, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["outbox", *args])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == f"outbox: {box.path}"


def test_no_outbox_is_an_error_and_none_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the relative default, ./data, as from another folder
    monkeypatch.delenv("RECEIVER_DATA_DIR", raising=False)
    for args in (["list"], ["retry", "--dead"], ["show", "1"]):
        result = CliRunner().invoke(main, ["outbox", *args])
        assert result.exit_code == 1
        assert f"no outbox at {tmp_path / 'data' / 'outbox.sqlite3'}" in result.stderr
        assert "RECEIVER_DATA_DIR" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_list_shows_dry_run_items_apart_from_sent(box: Outbox) -> None:
    (item_id,) = box.enqueue([Entry("ops", MSG, ("dave",))], source="alertmanager", group_key="g")
    box.claim()
    box.mark_sent(item_id, [], state="dry_run")
    code, out = run("list")
    assert code == 0
    assert "sent=1" in out.splitlines()[0] and "dry_run=1" in out.splitlines()[0]
    assert any(line.split()[:2] == [str(item_id), "dry_run"] for line in out.splitlines())
    code, out = run("list", "--state", "dry_run")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(item_id)]
