"""time_intervals: Alertmanager's syntax, validation and evaluation."""

from __future__ import annotations

import os
import time
import zoneinfo
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from receiver.routing.timeintervals import FIELDS, TimeInterval, parse_location

SH = ZoneInfo("Asia/Shanghai")


def ti(**fields: Any) -> TimeInterval:
    loc = fields.pop("location", None)
    parsed = {k: FIELDS[k](v) for k, v in fields.items()}
    return TimeInterval(**parsed, location=parse_location(loc) if loc else UTC)


@pytest.mark.parametrize(
    ("interval", "when", "expected"),
    [
        (ti(), datetime(2026, 1, 1, tzinfo=UTC), True),
        (ti(times=[{"start_time": "09:00", "end_time": "17:00"}]), "2026-03-02T09:00Z", True),
        (ti(times=[{"start_time": "09:00", "end_time": "17:00"}]), "2026-03-02T17:00Z", False),
        (ti(times=[{"start_time": "09:00", "end_time": "17:00"}]), "2026-03-02T08:59Z", False),
        (ti(times=[{"start_time": "22:00", "end_time": "24:00"}]), "2026-03-02T23:59Z", True),
        (ti(weekdays=["saturday", "sunday"]), "2026-03-01T12:00Z", True),  # a Sunday
        (ti(weekdays=["monday:friday"]), "2026-03-01T12:00Z", False),
        (ti(weekdays=["MONDAY:friday"]), "2026-03-02T12:00Z", True),
        # Sunday 20:00 UTC is Monday 04:00 in Shanghai.
        (ti(weekdays=["monday"], location="Asia/Shanghai"), "2026-03-01T20:00Z", True),
        (ti(weekdays=["monday"]), "2026-03-01T20:00Z", False),
        (ti(days_of_month=["-1"]), "2026-02-28T12:00Z", True),
        (ti(days_of_month=["-1"]), "2024-02-28T12:00Z", False),
        (ti(days_of_month=["-1"]), "2024-02-29T12:00Z", True),
        (ti(days_of_month=["-3:-1"]), "2026-04-28T00:00Z", True),
        (ti(days_of_month=["-3:-1"]), "2026-04-27T00:00Z", False),
        (ti(days_of_month=["25:-1"]), "2026-02-27T00:00Z", True),
        (ti(days_of_month=["30:31"]), "2026-02-28T00:00Z", False),  # skipped in February
        (ti(days_of_month=["1:5", "15"]), "2026-02-15T00:00Z", True),
        (ti(months=["december", "1:2"]), "2026-02-15T00:00Z", True),
        (ti(months=["march:may"]), "2026-02-15T00:00Z", False),
        (ti(years=["2024:2025"]), "2026-02-15T00:00Z", False),
        (ti(years=["2026"]), "2026-02-15T00:00Z", True),
        (
            ti(weekdays=["monday:friday"], times=[{"start_time": "09:00", "end_time": "18:00"}]),
            "2026-03-07T10:00Z",  # Saturday: every set field must match
            False,
        ),
    ],
)
def test_contains(interval: TimeInterval, when: str | datetime, expected: bool) -> None:
    now = when if isinstance(when, datetime) else datetime.fromisoformat(when)
    assert interval.contains(now) is expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("times", [{"start_time": "17:00", "end_time": "09:00"}]),
        ("times", [{"start_time": "24:00", "end_time": "24:00"}]),
        ("times", [{"start_time": "9:00", "end_time": "10:00"}]),
        ("times", [{"start_time": "09:00"}]),
        ("times", [{"start_time": "09:00", "end_time": "25:00"}]),
        ("weekdays", ["1"]),
        ("weekdays", ["saturday:sunday"]),
        ("weekdays", ["funday"]),
        ("days_of_month", ["0"]),
        ("days_of_month", ["32"]),
        ("days_of_month", ["-3:5"]),
        ("days_of_month", ["10:5"]),
        ("months", ["13"]),
        ("months", ["march:january"]),
        ("years", ["2026:2024"]),
        ("years", ["soon"]),
    ],
)
def test_rejects(field: str, value: list[Any]) -> None:
    with pytest.raises(ValueError):
        FIELDS[field](value)


def test_location() -> None:
    assert parse_location("UTC") is UTC
    assert parse_location("Asia/Shanghai") == SH
    with pytest.raises(ValueError):
        parse_location("Mars/Olympus")


@pytest.fixture
def host_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], None]]:
    """Sets the host's zone (TZ) for this test, for Python's and libc's clocks alike."""

    def set_tz(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv("TZ", raising=False)
        else:
            monkeypatch.setenv("TZ", value)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


def test_local_follows_the_host_zone_across_dst(host_tz: Callable[[str | None], None]) -> None:
    """`location: Local` is read at each instant in the host's zone, as Alertmanager's Go
    time.Local does, not at the offset the host had when the file was loaded."""
    host_tz("Europe/Berlin")
    nine = ti(times=[{"start_time": "09:00", "end_time": "10:00"}], location="Local")
    assert nine.contains(datetime(2026, 1, 15, 8, 30, tzinfo=UTC))  # 09:30 CET (+1)
    assert not nine.contains(datetime(2026, 1, 15, 7, 30, tzinfo=UTC))
    assert nine.contains(datetime(2026, 7, 15, 7, 30, tzinfo=UTC))  # 09:30 CEST (+2)
    assert not nine.contains(datetime(2026, 7, 15, 8, 30, tzinfo=UTC))
    # The night the clocks go forward (29 March 2026, 01:00 UTC): 00:30 UTC is 01:30
    # CET, 01:30 UTC is 03:30 CEST.
    night = ti(times=[{"start_time": "01:00", "end_time": "02:00"}], location="Local")
    assert night.contains(datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert not night.contains(datetime(2026, 3, 29, 1, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    ("tz", "offset_in_july"),
    [
        (":Asia/Shanghai", 8 * 60),
        ("{tzpath}/America/New_York", -4 * 60),  # a zone file by its path
        ("", 0),  # TZ="" is UTC, as in Go
        ("UTC", 0),
        ("Nowhere/Atlantis", 0),  # an unknown zone falls back to UTC, as in Go
    ],
)
def test_local_reads_tz_as_go_does(
    host_tz: Callable[[str | None], None], tz: str, offset_in_july: int
) -> None:
    if "{tzpath}" in tz:
        found = [p for p in zoneinfo.TZPATH if os.path.exists(f"{p}/America/New_York")]
        if not found:
            pytest.skip("no system time zone files")
        tz = tz.format(tzpath=found[0])
    host_tz(tz)
    offset = datetime(2026, 7, 1, tzinfo=UTC).astimezone(parse_location("Local")).utcoffset()
    assert offset is not None and offset.total_seconds() == offset_in_july * 60


def test_local_without_tz_is_etc_localtime(host_tz: Callable[[str | None], None]) -> None:
    host_tz(None)
    want: tzinfo = UTC  # what Go's time.Local is without /etc/localtime
    if os.path.exists("/etc/localtime"):
        with open("/etc/localtime", "rb") as fh:
            want = ZoneInfo.from_file(fh)
    for month in (1, 7):
        at = datetime(2026, month, 1, tzinfo=UTC)
        assert at.astimezone(parse_location("Local")).utcoffset() == at.astimezone(want).utcoffset()
