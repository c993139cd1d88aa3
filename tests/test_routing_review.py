"""Review findings: places where routing.yaml diverged from Alertmanager 0.25."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from receiver.errors import ConfigError
from receiver.routing import load_routing
from receiver.routing.matchers import Matcher, MatcherError
from receiver.routing.table import RoutingTable


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
