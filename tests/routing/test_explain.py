"""routing.explain: the answers of `routes test` and `routes diff`, as the console shows them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from receiver.routing import load_routing
from receiver.routing.explain import diff, explain, parse_labels
from receiver.routing.table import RoutingTable

SH = ZoneInfo("Asia/Shanghai")
SATURDAY = datetime(2026, 12, 5, 12, 0, tzinfo=SH)
MONDAY = datetime(2026, 12, 7, 12, 0, tzinfo=SH)

ROUTING = """
users: {alice: manager4220, bob: user0002}
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: ['saturday', 'sunday'], location: Asia/Shanghai}]
  - name: weekdays
    time_intervals: [{weekdays: ['monday:friday'], location: Asia/Shanghai}]
receivers:
  - {name: ops, users: [alice]}
  - {name: db, users: [bob], departments: [12345]}
  - {name: db-quiet, users: [alice]}
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
      continue: true
      routes:
        - matchers: ['severity="info"']
          receiver: db-quiet
          mute_time_intervals: [weekends]
    - matchers: ['team="db"']
      receiver: ops
      active_time_intervals: [weekdays]
"""


@pytest.fixture
def table(tmp_path: Path) -> RoutingTable:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    return load_routing(str(path))


def test_the_path_and_why_a_matched_route_is_silent(table: RoutingTable) -> None:
    answer = explain(table, {"team": "db", "severity": "info"}, SATURDAY)
    quiet, ops = answer.routes
    assert quiet.path == ("default-route", '{team="db"}', '{severity="info"}')
    assert (quiet.receiver, quiet.notifies) == ("db-quiet", False)
    assert quiet.why == "muted by mute_time_intervals weekends"
    assert ops.why == "outside active_time_intervals weekdays" and not ops.notifies
    assert answer.receivers == () and answer.userids == ()  # db's route is the parent


def test_receivers_and_people_on_a_weekday(table: RoutingTable) -> None:
    answer = explain(table, {"team": "db", "severity": "info"}, MONDAY)
    assert answer.receivers == ("db-quiet", "ops")
    assert answer.userids == ("manager4220",)
    assert all(r.notifies and r.why == "" for r in answer.routes)
    answer = explain(table, {"team": "db"}, MONDAY)
    assert answer.as_json() == {
        "receivers": ["db", "ops"], "userids": ["user0002", "manager4220"], "departments": [12345]
    }  # fmt: skip
    assert [(r.name, r.userids, r.departments) for r in answer.per_receiver] == [
        ("db", ("user0002",), (12345,)), ("ops", ("manager4220",), ()),
    ]  # fmt: skip


def test_labels_are_read_as_amtool_reads_them() -> None:
    assert parse_labels(["a=b", 'c="d=e"', "f="]) == {"a": "b", "c": "d=e", "f": ""}
    with pytest.raises(ValueError, match="use LABEL=VALUE"):
        parse_labels(["a!=b"])
    with pytest.raises(ValueError):
        parse_labels(["no equals sign"])


def test_diff_lists_the_alerts_whose_pager_changes(table: RoutingTable, tmp_path: Path) -> None:
    path = tmp_path / "new.yaml"
    path.write_text(ROUTING.replace("{name: db, users: [bob]", "{name: db, users: [alice]"))
    after = load_routing(str(path))
    alerts = [("a.json", {"team": "db"}), ("a.json", {"team": "web"})]
    changes, total = diff(table, after, alerts, MONDAY)
    assert total == 2
    (c,) = changes
    assert c.labels == {"team": "db"} and c.before == c.after == ("db", "ops")
    assert c.added == () and c.removed == ("user0002",)
