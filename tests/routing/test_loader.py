"""The strict loader: every problem, each with its line, all at once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver.errors import ConfigError
from receiver.routing import load_routing
from receiver.routing.table import Lookup, RoutingTable

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> RoutingTable:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_routing(str(path))


def problems(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    assert all(p.file.endswith("routing.yaml") for p in e.value.problems)
    return [(p.line, p.message) for p in e.value.problems]


BAD = """\
users:
  alice: u1
  alice: u2
schedules:
  s1:
    timezone: Mars/Base
    rotation: fortnightly
    start: 2026-11-30
    members: [alice]
    colour: red
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: "22:00", end_time: "06:00"}]
  - name: nights
    time_intervals: [{weekdays: [funday]}]
receivers:
  - name: ops
    users: [alice]
    msgtype: html
  - name: ops
    schedules: [nobody]
    departments: [abc]
route:
  receiver: ops
  matchers: ['a="b"']
  group_by: [alertname]
  routes:
    - matchers: ['severity=~"("', 'team="db"']
      receiver: missing
      mute_time_intervals: [weekends]
    - match: {"bad-name": x}
      match_re: {svc: "(?<=x)y"}
      recevier: ops
"""


def test_all_problems_at_once_with_lines(tmp_path: Path) -> None:
    got = problems(tmp_path, BAD)
    expected = [
        (3, "duplicate name 'alice' in users"),
        (6, "unknown time zone 'Mars/Base'"),
        (7, "rotation 'fortnightly'"),
        (10, "unknown key 'colour' in schedule 's1'"),
        (14, "start_time must be before end_time"),
        (15, "duplicate time interval 'nights'"),
        (16, "'funday' is not a valid weekday"),
        (20, "msgtype must be one of markdown, text, action_card"),
        (21, "duplicate receiver 'ops'"),
        (22, "undefined schedule 'nobody'"),
        (23, "a department id must be a positive integer"),
        (26, "the root route cannot have matchers"),
        (27, "group_by: Alertmanager groups alerts"),
        (29, "bad regex '('"),
        (30, "undefined receiver 'missing'"),
        (30, "undefined time interval 'weekends'"),
        (32, "invalid label name 'bad-name' in match"),
        (33, "look-around"),
        (34, "unknown key 'recevier' in a route; did you mean 'receiver'?"),
    ]
    assert len(got) == len(expected), got
    for (line, message), (want_line, want) in zip(got, expected, strict=True):
        assert line == want_line and want in message, (line, message)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("receivers: []\n", 1, "the top level needs 'route'"),
        ("route: {receiver: x}\n", 1, "the top level needs 'receivers'"),
        ("receivers: [{name: a}]\nroute: {}\n", 2, "the root route needs 'receiver'"),
        ("receivers: [{name: a}]\nroute:\n  receiver: a\n  continue: true\n", 4, "root"),
        ("receivers: [{name: a}]\nroute: {receiver: a}\nextra: 1\n", 3, "unknown key 'extra'"),
        ("receivers: [{name: a}\nroute: {receiver: a}\n", 2, "invalid YAML"),
        ("", 1, "the file is empty"),
        ("- a\n", 1, "the top level must be a mapping"),
        (
            "receivers: [{name: a}]\nroute: {receiver: a}\nusers: {b: {phone: '1'}}\n",
            3,
            "unknown key 'phone'",
        ),
        (
            "receivers: [{name: a, users: [x]}]\nroute: {receiver: a}\n"
            "schedules:\n  s: {timezone: UTC, rotation: daily, handoff: 'Mon 10:00',"
            " start: 2026-01-01, members: [x]}\n",
            4,
            "a weekday in handoff needs rotation: weekly",
        ),
        (
            "receivers: [{name: a}]\nroute: {receiver: a}\n"
            "schedules:\n  s:\n    timezone: UTC\n    rotation: daily\n    start: 2026-01-01\n"
            "    members: [x]\n"
            "    overrides: [{user: y, from: '2026-01-02T00:00', to: '2026-01-01T00:00'}]\n",
            9,
            "an override must end after it starts",
        ),
    ],
)
def test_single_problem(tmp_path: Path, text: str, line: int, message: str) -> None:
    got = problems(tmp_path, text)
    assert any(ln == line and message in m for ln, m in got), got


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as e:
        load_routing("/nonexistent/routing.yaml")
    assert "cannot read" in str(e.value)


def test_bundled_routing_loads_without_directory() -> None:
    table = load_routing(str(ROOT / "routing.yaml"))
    assert set(table.receivers) >= {"ops", "db"}
    assert isinstance(table.users["erin"], Lookup)
    assert table.resolve("erin") == []
    assert all("warning:" in str(w) for w in table.warnings)
    assert {w.line for w in table.warnings} == {12, 13, 14}


class FakeDirectory:
    def __init__(self, people: dict[tuple[str, str], list[str]]) -> None:
        self.people = people

    def find(self, field: str, value: str) -> list[str]:
        return self.people.get((field, value), [])

    def synced_at(self) -> float | None:
        return 1.0

    def describe(self, userids: Iterable[str]) -> str:
        return ", ".join(userids)


def test_directory_aliases_resolve_at_send_time(tmp_path: Path) -> None:
    text = (
        "users: {bob: {mobile: '138'}, al: u1}\n"
        "receivers: [{name: a, users: [bob, al, u1, raw9]}]\nroute: {receiver: a}\n"
    )
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    table = load_routing(str(path), FakeDirectory({("mobile", "138"): ["u7", "u1"]}))
    assert table.recipients("a", datetime(2026, 1, 1, tzinfo=UTC)).userids == ("u7", "u1", "raw9")
    # Two people with that mobile: serve warns (check-config makes it an error), and
    # a raw userid (not an alias) is accepted with a warning that catches alias typos.
    assert [(w.line, "raw9" in w.message) for w in table.warnings] == [
        (1, False),
        (2, False),
        (2, True),
    ]
    assert "2 people have mobile '138': u7, u1" in table.warnings[0].message
    assert "'u1'" in table.warnings[1].message


def test_userids_keep_their_text(tmp_path: Path) -> None:
    table = load(
        tmp_path, "users: {a: 0123}\nreceivers: [{name: r, users: [a]}]\nroute: {receiver: r}\n"
    )
    assert table.recipients("r").userids == ("0123",)


def test_reload_keeps_the_running_table_on_error(tmp_path: Path) -> None:
    from receiver.routing.loader import fingerprint, reload

    good = "receivers: [{name: a}]\nroute: {receiver: a}\n"
    table = load(tmp_path, good)
    path = str(tmp_path / "routing.yaml")
    before = fingerprint(path)
    assert reload(path, table) == reload(path, table)
    assert reload(path, table).changed is False

    (tmp_path / "routing.yaml").write_text(good + "oops: 1\n")
    assert fingerprint(path) != before
    failed = reload(path, table)
    assert failed.table is table and not failed.ok and not failed.changed
    assert [(p.line, p.message[:16]) for p in failed.problems] == [(3, "unknown key 'oop")]

    (tmp_path / "routing.yaml").write_text(
        good.replace("name: a", "name: b").replace(": a}", ": b}")
    )
    done = reload(path, table)
    assert done.ok and done.changed and list(done.table.receivers) == ["b"]
    assert fingerprint(str(tmp_path / "missing.yaml")) == ""


def test_docs_example_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs/routing.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    assert blocks
    for block in blocks:
        table = load(tmp_path, block)
        assert table.match({"team": "db", "severity": "page"}) == ["db"]


def test_a_file_that_is_not_utf8_is_a_problem_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"  # a comment saved in GBK, as a Windows editor may
    text = b"receivers: [{name: a}]\nroute: {receiver: a}\n# " + "值班表".encode("gbk") + b"\n"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as e:
        load_routing(str(path))
    assert str(e.value).startswith(f"{path}:3: ") and "UTF-8" in str(e.value), e.value


def test_the_root_route_needs_a_receiver_that_is_not_empty(tmp_path: Path) -> None:
    """Only a child inherits an empty receiver; Alertmanager refuses an empty root one too."""
    for value in ('""', ""):
        text = f"receivers: [{{name: ops}}]\nroute:\n  receiver: {value}\n"
        assert [line for line, _ in problems(tmp_path, text)] == [3]
