"""The route tree and the table: tables of YAML + labels -> receivers and people."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver.delivery.pipeline import plan
from receiver.errors import ConfigError
from receiver.messages.render import Renderer
from receiver.model import Alert, Notification
from receiver.routing import load_routing
from receiver.routing.matchers import Matcher, MatcherError
from receiver.routing.table import RoutingTable, draw_tree

ROOT = Path(__file__).resolve().parents[2]

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


# -- places where routing.yaml once diverged from Alertmanager 0.25 --------------------


def load(tmp_path: Path, text: str) -> RoutingTable:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_routing(str(path))


# Unquoted, `10:30` and `1:5` are YAML 1.1 base-60 integers (630, 65) to PyYAML, but
# Alertmanager's go-yaml reads them as the strings written (amtool check-config: SUCCESS).
UNQUOTED = """\
time_intervals:
  - name: work
    time_intervals:
      - times:
          - start_time: 10:30
            end_time: 17:00
        days_of_month: [1:5]
        months: [1:3]
        years: [2026]
receivers:
  - name: ops
    users: [u1]
  - name: db
    users: [u2]
route:
  receiver: ops
  routes:
    - matchers: [team=db]
      receiver: db
      active_time_intervals: [work]
"""


def test_unquoted_times_and_ranges_read_as_written(tmp_path: Path) -> None:
    table = load(tmp_path, UNQUOTED)
    db = {"team": "db"}
    assert table.match(db, datetime.fromisoformat("2026-02-03T10:30Z")) == ["db"]
    assert table.match(db, datetime.fromisoformat("2026-02-03T10:29Z")) == []
    assert table.match(db, datetime.fromisoformat("2026-02-03T17:00Z")) == []
    assert table.match(db, datetime.fromisoformat("2026-02-06T12:00Z")) == []
    assert table.match(db, datetime.fromisoformat("2026-04-03T12:00Z")) == []


@pytest.mark.parametrize(
    ("body", "at", "message"),
    [
        ("    - continue: {[a]: 1}\n", 5, "continue must be true or false"),
        (
            "    - mute_time_intervals: [w]\n"
            "time_intervals: [{name: w, time_intervals: [{location: {[a]: b}}]}]\n",
            6,
            "location must be a time zone name",
        ),
    ],
)
def test_a_list_as_a_mapping_key_is_a_config_error_not_a_crash(
    tmp_path: Path, body: str, at: int, message: str
) -> None:
    text = "receivers: [{name: ops, users: [u]}]\nroute:\n  receiver: ops\n  routes:\n" + body
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    assert [(p.line, message in p.message) for p in e.value.problems] == [(at, True)]


# Each row checked with `amtool config routes test` (Alertmanager 0.25, Go RE2).
@pytest.mark.parametrize(
    ("regex", "value", "hit"),
    [
        ("[[:alpha:]]+", "abc", True),
        ("[[:alpha:]]+", ":", False),
        ("[x[:digit:]]+", "x42", True),
        ("[^[:space:]]+", "a b", False),
        ("a{,2}", "a{,2}", True),
        ("a{,2}", "aa", False),
        ("a{2", "a{2", True),
        ("a{2}", "aa", True),
        ("foo\\z", "foo", True),
        ("\\Qa.b\\E", "a.b", True),
        ("\\Qa.b\\E", "axb", False),
        ("[a-]", "-", True),
        ("[]a]", "]", True),
    ],
)
def test_regexes_match_as_re2_does(regex: str, value: str, hit: bool) -> None:
    assert Matcher.make("a", "=~", regex).matches({"a": value}) is hit


@pytest.mark.parametrize("regex", ["foo\\Z", "a*+", "(?>a)", "a{1001}", "[[:nope:]]"])
def test_regexes_re2_refuses_are_refused(regex: str) -> None:
    with pytest.raises(MatcherError):
        Matcher.make("a", "=~", regex)
