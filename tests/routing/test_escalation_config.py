"""escalation_policies:, and a receiver's escalation: and notify_ack:, read strictly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver.errors import ConfigError
from receiver.routing import load_routing
from receiver.routing.escalation import Policy, Step, format_duration, parse_am_duration
from receiver.routing.table import RoutingTable

GOOD = """\
users:
  alice: u-alice
  carol: u-carol
schedules:
  db-secondary:
    timezone: UTC
    rotation: daily
    start: 2026-01-01
    members: [alice]
escalation_policies:
  db-pager:
    until: read
    steps:
      - after: 5m
        notify: {schedules: [db-secondary]}
      - after: 1h30m
        notify: {users: [carol], departments: [12345]}
    repeat: 1
  quiet:
    steps:
      - {after: 30s, notify: {users: [carol]}}
receivers:
  - name: db
    users: [alice]
    escalation: db-pager
    notify_ack: true
  - name: ops
    users: [carol]
route:
  receiver: db
"""


def load(tmp_path: Path, text: str) -> RoutingTable:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_routing(str(path))


def problems(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    assert all(p.file.endswith("routing.yaml") for p in e.value.problems)
    return [(p.line, p.message) for p in e.value.problems]


def test_policies_and_receiver_keys_load(tmp_path: Path) -> None:
    table = load(tmp_path, GOOD)
    assert table.policies["db-pager"] == Policy(
        name="db-pager",
        until="read",
        repeat=1,
        steps=(
            Step(after=300.0, schedules=("db-secondary",)),
            Step(after=5400.0, users=("carol",), departments=(12345,)),
        ),
    )
    assert table.policies["quiet"].until == "ack" and table.policies["quiet"].repeat == 0
    assert table.receivers["db"].escalation == "db-pager"
    assert table.receivers["db"].notify_ack is True
    assert table.receivers["ops"].escalation is None and not table.receivers["ops"].notify_ack
    # repeats unrolled: 2 steps, run twice
    assert table.policies["db-pager"].step_count() == 4
    assert table.policies["db-pager"].step(3) == table.policies["db-pager"].step(1)
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert table.step_recipients("db-pager", 1, at).userids == ("u-alice",)
    second = table.step_recipients("db-pager", 2, at)
    assert (second.userids, second.departments) == (("u-carol",), (12345,))


BAD = """\
escalation_policies:
  p1:
    until: never
    steps:
      - after: 5 minutes
        notify: {schedules: [nobody]}
      - after: 1m
        notify: {users: [x], team: [y]}
      - after: 1m
        notify: {}
    repeat: -1
    colour: red
  p2:
    steps: []
  p3:
    steps:
      - notify: {users: [a]}
receivers:
  - name: a
    escalation: missing
    notify_ack: maybe
route:
  receiver: a
"""


def test_every_problem_is_named_with_its_line(tmp_path: Path) -> None:
    got = problems(tmp_path, BAD)
    expected = [
        (3, "until must be one of ack, read"),
        (5, "'5 minutes' is not a duration"),
        (6, "undefined schedule 'nobody'"),
        (8, "unknown key 'team'"),
        (10, "notifies no one"),
        (11, "repeat must be a whole number"),
        (12, "unknown key 'colour' in escalation policy 'p1'"),
        (14, "escalation policy 'p2' needs at least one step"),
        (17, "escalation policy 'p3' step 1 needs 'after'"),
        (20, "undefined escalation policy 'missing'"),
        (21, "notify_ack must be true or false"),
    ]
    assert len(got) == len(expected), got
    for (line, message), (want_line, want) in zip(got, expected, strict=True):
        assert line == want_line and want in message, (line, message)


def test_an_unknown_user_in_a_step_is_a_raw_userid_warning(tmp_path: Path) -> None:
    text = GOOD.replace("users: [carol], departments", "users: [u-raw], departments")
    table = load(tmp_path, text)
    assert any("'u-raw' is not an alias" in w.message for w in table.warnings)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("1d", 86400.0),
     ("1w", 604800.0), ("500ms", 0.5)],
)  # fmt: skip
def test_alertmanager_durations(text: str, seconds: float) -> None:
    assert parse_am_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m", "1.5h", "-1m", "5m1h"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_am_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 45, 300, 5400, 90061)] == [
        "0s", "45s", "5m", "1h30m", "1d1h1m1s",
    ]  # fmt: skip
