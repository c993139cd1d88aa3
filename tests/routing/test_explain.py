"""routing.explain: the answers of `routes test` and `routes diff`, as the console shows them."""

from __future__ import annotations

import json
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
    contract = {k: answer.as_json()[k] for k in ("receivers", "userids", "departments")}
    assert contract == {
        "receivers": ["db", "ops"], "userids": ["user0002", "manager4220"], "departments": [12345]
    }  # fmt: skip
    assert [(r.name, r.userids, r.departments) for r in answer.per_receiver] == [
        ("db", ("user0002",), (12345,)), ("ops", ("manager4220",), ()),
    ]  # fmt: skip


def test_the_json_carries_what_the_text_says(table: RoutingTable, tmp_path: Path) -> None:
    """`routes test --tree --json`: matched-but-muted routes and the tree, as data."""
    from click.testing import CliRunner

    from receiver.cli.main import main

    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    args = ["routes", "test", "--routing", str(path), "--at", SATURDAY.isoformat()]
    labels = ["team=db", "severity=info"]
    text = CliRunner().invoke(main, [*args, "--tree", *labels]).stdout
    doc = json.loads(CliRunner().invoke(main, [*args, "--tree", "--json", *labels]).stdout)
    assert "  db-quiet: matched, but muted or inactive at" in text
    quiet, ops = doc["routes"]
    assert quiet == {
        "receiver": "db-quiet", "path": ["default-route", '{team="db"}', '{severity="info"}'],
        "line": quiet["line"], "notifies": False, "why": "muted by mute_time_intervals weekends",
    }  # fmt: skip
    assert (ops["notifies"], ops["why"]) == (False, "outside active_time_intervals weekdays")
    assert doc["receivers"] == [] and doc["at"] == SATURDAY.isoformat()
    tree = doc["tree"]
    assert (tree["matchers"], tree["receiver"]) == ("default-route", "ops")
    db = tree["routes"][0]
    assert (db["matchers"], db["continue"]) == ('{team="db"}', True)
    assert db["routes"][0]["mute_time_intervals"] == ["weekends"]
    assert tree["routes"][1]["active_time_intervals"] == ["weekdays"]
    monday = [*args[:-1], MONDAY.isoformat(), "--json", "team=db"]
    doc = json.loads(CliRunner().invoke(main, monday).stdout)
    assert "tree" not in doc  # only with --tree
    assert doc["recipients"][0] == {
        "receiver": "db",
        "userids": ["user0002"],
        "departments": [12345],
        "on_call": {},
    }


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
