"""From a notification to outbox entries: the fewest calls, each person once per message."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver.delivery.pipeline import plan, step_entries
from receiver.ingest.alertmanager import parse_alertmanager
from receiver.messages.acklinks import AckLinks
from receiver.messages.budget import compact
from receiver.messages.render import Renderer
from receiver.routing import load_routing
from tests.conftest import FIXTURES, ROOT

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def table(tmp_path: Path, team: int, sre: int, overlap: int, sre_template: str = ""):  # type: ignore[no-untyped-def]
    team_users = [f"t{i:03d}" for i in range(team)]
    sre_users = team_users[:overlap] + [f"s{i:03d}" for i in range(sre - overlap)]
    text = f"""
receivers:
  - name: team
    users: [{", ".join(team_users)}]
  - name: sre
    users: [{", ".join(sre_users)}]
    {sre_template}
route:
  receiver: team
  routes:
    - matchers: ['severity="critical"']
      receiver: team
      continue: true
    - matchers: ['severity="critical"']
      receiver: sre
"""
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_routing(str(path))


def critical() -> bytes:
    return (FIXTURES / "alertmanager/firing-1.json").read_bytes()  # severity=critical


def test_identical_messages_share_calls_up_to_100_people(tmp_path: Path) -> None:
    # 40 + 120 people, 10 in both: 150 distinct people, one message -> 2 calls, not 3.
    entries = plan(table(tmp_path, 40, 120, 10), Renderer(str(ROOT / "templates")),
                   parse_alertmanager(critical()), now=NOW)  # fmt: skip
    assert [len(e.userids) for e in entries] == [100, 50]
    everyone = [u for e in entries for u in e.userids]
    assert len(everyone) == len(set(everyone)) == 150
    assert {e.receiver for e in entries} == {"team,sre"}
    assert entries[0].msg == entries[1].msg


def test_different_messages_are_not_merged(tmp_path: Path) -> None:
    t = table(tmp_path, 3, 3, 1, sre_template="msgtype: text")
    entries = plan(t, Renderer(str(ROOT / "templates")), parse_alertmanager(critical()), now=NOW)
    assert [(e.receiver, e.msg["msgtype"], len(e.userids)) for e in entries] == [
        ("team", "markdown", 3), ("sre", "text", 3)
    ]  # fmt: skip


ROBOTS = """
robots:
  team-chat:
    webhook: https://oapi.dingtalk.com/robot/send?access_token=t1
  sre-chat:
    webhook: https://oapi.dingtalk.com/robot/send?access_token=t2
    msgtype: text
receivers:
  - name: team
    users: [t1, t2]
    robots: [team-chat]
  - name: sre
    users: [s1, t1]
    robots: [team-chat, sre-chat]
  - name: chat-only
    robots: [sre-chat]
route:
  receiver: team
  routes:
    - matchers: ['severity="critical"']
      receiver: team
      continue: true
    - matchers: ['severity="critical"']
      receiver: sre
      continue: true
    - matchers: ['severity="critical"']
      receiver: chat-only
"""


def test_one_robot_copy_per_robot_and_message_mentioning_everyone_paged(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROBOTS)
    n = parse_alertmanager((FIXTURES / "alertmanager/firing-1.json").read_bytes())
    entries = plan(load_routing(str(path)), Renderer(str(ROOT / "templates")), n, now=NOW)
    work = [e for e in entries if e.robot is None]
    copies = {e.robot: e for e in entries if e.robot is not None}
    assert [(e.receiver, e.userids) for e in work] == [("team,sre,chat-only", ("t1", "t2", "s1"))]
    assert set(copies) == {"team-chat", "sre-chat"}
    team = copies["team-chat"]  # team and sre render the same message: one post
    assert team.receiver == "team,sre" and team.userids == () and team.departments == ()
    assert team.msg["at"]["atUserIds"] == ["t1", "t2", "s1"]
    assert team.msg["markdown"]["text"].endswith("@t1 @t2 @s1")
    sre = copies["sre-chat"]  # a receiver with no one in it posts, mentioning no one more
    assert sre.receiver == "sre,chat-only" and sre.msg["msgtype"] == "text"
    assert sre.msg["at"]["atUserIds"] == ["s1", "t1"]
    assert entries.index(team) > entries.index(work[0])  # pages are queued first


@pytest.mark.parametrize("fixture", sorted(p.name for p in (FIXTURES / "alertmanager").iterdir()))
def test_an_entrys_text_is_its_message_as_the_outbox_stores_it(
    tmp_path: Path, fixture: str
) -> None:
    """The JSON a render made to size a message is what the outbox stores for its entry:
    it must be that message's, with acknowledge links, department copies and robots too."""
    t = table(tmp_path, 3, 3, 1, sre_template="msgtype: text\n    departments: [7]")
    n = parse_alertmanager((FIXTURES / "alertmanager" / fixture).read_bytes())
    renderer = Renderer(str(ROOT / "templates"))
    ack = AckLinks("https://rx.example/", "k" * 32, 7, NOW.timestamp() + 3600)
    receiver = t.receivers["sre"]
    for entries in (
        plan(t, renderer, n, now=NOW),
        plan(t, renderer, n, now=NOW, ack=ack),
        step_entries(renderer, n, receiver, ["t000"], [7], now=NOW, ack=ack, note="5m"),
        step_entries(renderer, n, receiver, ["t000"], [], now=NOW, ack=None, note="5m"),
    ):
        assert entries
        for e in entries:
            assert e.text in ("", compact(e.msg)), e
    assert all(e.text for e in plan(t, renderer, n, now=NOW))  # no acknowledge links: all made
