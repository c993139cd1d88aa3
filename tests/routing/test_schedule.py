"""On-call rotations: handoffs across DST, month ends, and overrides straddling a handoff."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from receiver.routing.schedule import Override, Schedule, parse_handoff, parse_rotation

ZONES = ["UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
MEMBERS = ("a", "b", "c")

zones = st.sampled_from(ZONES).map(ZoneInfo)
rotations = st.sampled_from(["daily", "weekly", "1h", "12h", "36h"])
handoffs = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 59]))
starts = st.dates(date(2024, 1, 1), date(2027, 12, 31))
instants = st.datetimes(datetime(2023, 6, 1), datetime(2029, 1, 1), timezones=st.just(UTC))


def build(tz: ZoneInfo, rotation: str, at: time, start: date, **kw: object) -> Schedule:
    return Schedule.build("s", tz, rotation, at.strftime("%H:%M"), start, MEMBERS, **kw)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(zones, rotations, handoffs, starts, instants)
@example(  # 1h on the spring-forward night: the 02:15-03:15 shift does not exist
    ZoneInfo("America/New_York"), "1h", time(0, 15), date(2024, 1, 1),
    datetime(2024, 3, 10, 7, 0, tzinfo=UTC),
)  # fmt: skip
def test_shift_boundaries_and_order(
    tz: ZoneInfo, rotation: str, at: time, start: date, t: datetime
) -> None:
    s = build(tz, rotation, at, start)
    now, nxt = s.shifts(t, 2)
    assert now.start <= t < now.end <= nxt.start  # type: ignore[operator]
    assert now.end == nxt.start
    assert s.on_call(t) == now.user != nxt.user
    # Order is kept: the next person is the next member, unless the shifts between
    # are empty (a 1h shift wholly inside a DST gap hands off when the next one does).
    k, after = s._index(t), s._index(now.end)
    assert MEMBERS.index(now.user) == k % 3 and MEMBERS.index(nxt.user) == after % 3 and after > k
    assert all(s.handoff(j) == now.end for j in range(k + 1, after + 1)), (k, after)
    # A handoff is at the wall-clock handoff time, unless that time does not exist (DST gap).
    local = now.start.astimezone(tz)
    wall = datetime.combine(local.date(), at)
    exists = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall
    if rotation in ("daily", "weekly") and exists:
        assert local.time() == at
    # A shift lasts the rotation in wall-clock time, so real length differs at most by DST.
    step = parse_rotation(rotation)
    assert abs((now.end - now.start) - step) <= timedelta(hours=1)  # type: ignore[operator]


@settings(max_examples=100, deadline=None)
@given(zones, handoffs, starts, instants, st.integers(1, 72), st.integers(1, 200))
def test_override_replaces_only_its_window(
    tz: ZoneInfo, at: time, start: date, t: datetime, hours: int, probe: int
) -> None:
    plain = build(tz, "daily", at, start)
    handoff = plain.shift_at(t).end
    assert handoff is not None
    # An override that straddles the handoff after t.
    o = Override("zed", handoff - timedelta(hours=hours), handoff + timedelta(hours=hours))
    s = build(tz, "daily", at, start, overrides=(o,))
    p = o.start + (o.end - o.start) * probe / 201
    assert s.on_call(p) == "zed"
    for outside in (o.start - timedelta(microseconds=1), o.end, o.end + timedelta(days=3)):
        assert s.on_call(outside) == plain.on_call(outside)  # the rotation does not shift
    shift = s.shift_at(p)
    assert (shift.user, shift.start, shift.end) == ("zed", o.start, o.end)


@pytest.mark.parametrize(
    ("zone", "rotation", "handoff", "start", "expected"),
    [
        # Berlin springs forward on 2026-03-29 02:00 -> 03:00: the 02:30 handoff happens at 03:30.
        (
            "Europe/Berlin",
            "daily",
            "02:30",
            date(2026, 3, 27),
            ["02:30", "02:30", "03:30", "02:30"],
        ),
        # New York falls back on 2026-11-01: a 12h rotation stays on 08:00/20:00 local time.
        (
            "America/New_York",
            "12h",
            "08:00",
            date(2026, 10, 31),
            ["08:00", "20:00", "08:00", "20:00"],
        ),
        # Weekly handoff across a month end, Shanghai.
        ("Asia/Shanghai", "weekly", "Mon 10:00", date(2026, 11, 25), ["10:00"] * 4),
    ],
)
def test_handoff_wall_clock(
    zone: str, rotation: str, handoff: str, start: date, expected: list[str]
) -> None:
    s = Schedule.build("s", ZoneInfo(zone), rotation, handoff, start, MEMBERS)
    got = [s.handoff(k).astimezone(ZoneInfo(zone)).strftime("%H:%M") for k in range(4)]
    assert got == expected
    assert s.on_call(s.handoff(0)) == "a"
    assert s.on_call(s.handoff(1)) == "b"
    assert s.on_call(s.handoff(1) - timedelta(microseconds=1)) == "a"


def test_weekly_first_handoff_is_on_or_after_start() -> None:
    s = Schedule.build(
        "s", ZoneInfo("Asia/Shanghai"), "weekly", "Mon 10:00", date(2026, 11, 25), MEMBERS
    )
    assert s.handoff(0) == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # Monday 10:00 +08:00
    # Before the first handoff the rotation extends backwards.
    assert s.on_call(datetime(2026, 11, 29, tzinfo=UTC)) == "c"


def test_last_listed_override_wins() -> None:
    tz = ZoneInfo("UTC")
    o1 = Override("x", datetime(2026, 1, 1, tzinfo=tz), datetime(2026, 1, 3, tzinfo=tz))
    o2 = Override("y", datetime(2026, 1, 2, tzinfo=tz), datetime(2026, 1, 4, tzinfo=tz))
    s = Schedule.build("s", tz, "daily", "00:00", date(2026, 1, 1), MEMBERS, (o1, o2))
    assert [s.on_call(datetime(2026, 1, d, 12, tzinfo=tz)) for d in (1, 2, 3, 4)] == [
        "x",
        "y",
        "y",
        "a",
    ]


@pytest.mark.parametrize("text", ["10", "25:00", "Mon", "Funday 10:00", "10:0"])
def test_bad_handoff(text: str) -> None:
    with pytest.raises(ValueError):
        parse_handoff(text)


@pytest.mark.parametrize("text", ["hourly", "0h", "12", "-1h", "1.5h"])
def test_bad_rotation(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rotation(text)


def test_handoff_forms() -> None:
    assert parse_handoff("Mon 10:00") == (0, time(10))
    assert parse_handoff("sunday 9:30") == (6, time(9, 30))
    assert parse_handoff("23:59") == (None, time(23, 59))
