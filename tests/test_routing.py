"""The route tree and the table: tables of YAML + labels -> receivers and people."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver.delivery.pipeline import plan
from receiver.messages.render import Renderer
from receiver.model import Alert, Notification
from receiver.routing import load_routing
from receiver.routing.table import RoutingTable, draw_tree

ROOT = Path(__file__).resolve().parent.parent

TREE = """
users: {alice: u-alice, bob: u-bob, carol: u-carol}
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: [saturday, sunday], location: Asia/Shanghai}]
  - name: office
    time_intervals: [{times: [{start_time: "09:00", end_time: "18:00"}]}]
receivers:
  - {name: ops, users: [alice]}
  - {name: db, users: [alice, bob], departments: [7, 7]}
  - {name: dba, users: [bob, carol], departments: [7, 8]}
  - {name: quiet}
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
      continue: true
      mute_time_intervals: [weekends]
      routes:
        - matchers: ['severity="info"']
          receiver: quiet
    - matchers: ['team=~"db|dba"']
      receiver: dba
      active_time_intervals: [office]
    - matchers: ['team="web"']
      routes:
        - matchers: ['env="prod"']
"""

MON_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, inside office hours (UTC)
MON_20 = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # Monday 20:00 UTC = Tuesday 04:00 Shanghai
SAT_10 = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
def table(tmp_path: Path) -> RoutingTable:
    path = tmp_path / "routing.yaml"
    path.write_text(TREE)
    return load_routing(str(path))


@pytest.mark.parametrize(
    ("labels", "now", "expected"),
    [
        ({}, None, ["ops"]),
        ({"team": "db"}, None, ["db", "dba"]),
        ({"team": "db"}, MON_10, ["db", "dba"]),
        ({"team": "db"}, MON_20, ["db"]),  # dba is only active in office hours
        ({"team": "db"}, SAT_10, ["dba"]),  # db muted at weekends; dba still matches
        # The child of a muted route is not muted: intervals are not inherited.
        ({"team": "db", "severity": "info"}, SAT_10, ["quiet", "dba"]),
        ({"team": "db", "severity": "info"}, MON_10, ["quiet", "dba"]),
        ({"team": "dba"}, MON_20, []),  # matched, but inactive: no fallback to the parent
        ({"team": "web"}, None, ["ops"]),  # a route without receiver inherits its parent's
        ({"team": "web", "env": "prod"}, None, ["ops"]),
        ({"team": "DB"}, None, ["ops"]),  # case-sensitive
    ],
)
def test_match(
    table: RoutingTable, labels: dict[str, str], now: datetime | None, expected: list[str]
) -> None:
    assert table.match(labels, now) == expected


def test_recipients_dedup_within_and_across_receivers(table: RoutingTable) -> None:
    assert table.recipients("db").userids == ("u-alice", "u-bob")
    assert table.recipients("db").departments == (7,)
    both = table.recipients_of(["db", "dba"])
    assert both.userids == ("u-alice", "u-bob", "u-carol")
    assert both.departments == (7, 8)


def test_person_reached_twice_through_continue_gets_the_message_once(table: RoutingTable) -> None:
    alert = Alert("firing", {"team": "db", "alertname": "X"}, {}, MON_10, None, fingerprint="f")
    n = Notification("alertmanager", "dingtalk", "firing", (alert,), common_labels=alert.labels)
    entries = plan(table, Renderer(str(ROOT / "templates")), n, now=MON_10)
    sent = [u for e in entries for u in e.userids]
    assert sorted(sent) == ["u-alice", "u-bob", "u-carol"]


def test_draw_tree(table: RoutingTable) -> None:
    lines = draw_tree(table.route)
    assert lines[:3] == [
        "Routing tree:",
        "└── default-route  receiver: ops",
        '    ├── {team="db"}  continue: true  mute_time_intervals: weekends  receiver: db',
    ]
    assert lines[-1] == '        └── {env="prod"}  receiver: ops'


def test_schedule_members_are_recipients(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "users: {alice: u1, bob: u2}\n"
        "schedules:\n  s: {timezone: UTC, rotation: daily, handoff: '09:00',"
        " start: 2026-01-01, members: [alice, bob]}\n"
        "receivers: [{name: r, users: [bob], schedules: [s]}]\nroute: {receiver: r}\n"
    )
    table = load_routing(str(path))
    assert table.recipients("r", datetime(2026, 1, 1, 9, tzinfo=UTC)).userids == ("u2", "u1")
    assert table.recipients("r", datetime(2026, 1, 2, 9, tzinfo=UTC)).userids == ("u2",)
