"""Alertmanager's time intervals (`time_intervals:`), same syntax and semantics. Pure.

A named interval matches if any of its `TimeInterval`s does. A `TimeInterval`
matches if every field it sets matches (an unset field matches anything), and a
field matches if any of its ranges does. Times are `[start, end)` in minutes of
the day; weekday, day-of-month, month and year ranges are inclusive. The clock
is read in `location`, UTC by default; `Local` is the host's zone (`host_zone`).
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
MONTHS = [m.lower() for m in calendar.month_name[1:]]
_TIME = re.compile(r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)\Z")

Range = tuple[int, int]


@dataclass(frozen=True)
class TimeInterval:
    times: tuple[Range, ...] | None = None  # minutes of the day, [start, end)
    weekdays: tuple[Range, ...] | None = None  # sunday = 0
    days_of_month: tuple[Range, ...] | None = None  # 1..31 or -31..-1
    months: tuple[Range, ...] | None = None  # january = 1
    years: tuple[Range, ...] | None = None
    location: tzinfo = UTC

    def contains(self, now: datetime) -> bool:
        t = now.astimezone(self.location)
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(a <= minute < b for a, b in self.times):
                return False
        if self.weekdays is not None:
            wd = (t.weekday() + 1) % 7
            if not any(a <= wd <= b for a, b in self.weekdays):
                return False
        if self.days_of_month is not None and not _day_matches(t, self.days_of_month):
            return False
        if self.months is not None and not any(a <= t.month <= b for a, b in self.months):
            return False
        return self.years is None or any(a <= t.year <= b for a, b in self.years)


def _day_matches(t: datetime, ranges: tuple[Range, ...]) -> bool:
    days = calendar.monthrange(t.year, t.month)[1]
    for a, b in ranges:
        begin = days + a + 1 if a < 0 else a
        end = days + b + 1 if b < 0 else b
        if begin > days:
            continue
        if begin <= t.day <= min(end, days):
            return True
    return False


def _minutes(value: Any) -> int:
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError(f"couldn't parse timestamp {value!r}, invalid format (want HH:MM)")
    hh, mm = value.split(":")
    return int(hh) * 60 + int(mm)


def parse_times(items: list[Any]) -> tuple[Range, ...]:
    out = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"start_time", "end_time"}:
            raise ValueError("each time range is {start_time: HH:MM, end_time: HH:MM}")
        if not item.get("start_time") or not item.get("end_time"):
            raise ValueError("both start_time and end_time must be provided")
        start, end = _minutes(item["start_time"]), _minutes(item["end_time"])
        if start >= end:
            raise ValueError(
                "start_time must be before end_time; split a range that crosses midnight"
            )
        out.append((start, end))
    return tuple(out)


def _ranges(
    items: list[Any], one: Callable[[str], int], what: str, *, mixed_signs: bool = False
) -> tuple[Range, ...]:
    out = []
    for item in items:
        text = str(item).strip()
        a, sep, b = text.partition(":")
        start = one(a.strip())
        end = one(b.strip()) if sep else start
        if mixed_signs and start > 0 > end:
            start_, end_ = start, 28 + end + 1  # as AM: checked against a 28-day month
        else:
            start_, end_ = start, end
        if start < 0 < end:
            raise ValueError(f"{what} range {text!r}: end day must be negative if start is")
        if start_ > end_:
            raise ValueError(f"{what} range {text!r}: the start is after the end")
        out.append((start, end))
    return tuple(out)


def _weekday(s: str) -> int:
    if s.lower() not in WEEKDAYS:
        raise ValueError(f"{s!r} is not a valid weekday")
    return WEEKDAYS.index(s.lower())


def _month(s: str) -> int:
    if s.lower() in MONTHS:
        return MONTHS.index(s.lower()) + 1
    if s.isdigit() and 1 <= int(s) <= 12:
        return int(s)
    raise ValueError(f"{s!r} is not a valid month")


def _int(s: str, what: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise ValueError(f"{s!r} is not a valid {what}") from None


def _day(s: str) -> int:
    d = _int(s, "day of the month")
    if d == 0 or not -31 <= d <= 31:
        raise ValueError(f"{d} is not a valid day of the month: out of range")
    return d


def parse_weekdays(items: list[Any]) -> tuple[Range, ...]:
    return _ranges(items, _weekday, "weekday")


def parse_days_of_month(items: list[Any]) -> tuple[Range, ...]:
    return _ranges(items, _day, "days_of_month", mixed_signs=True)


def parse_months(items: list[Any]) -> tuple[Range, ...]:
    return _ranges(items, _month, "month")


def parse_years(items: list[Any]) -> tuple[Range, ...]:
    return _ranges(items, lambda s: _int(s, "year"), "year")


def parse_location(value: Any) -> tzinfo:
    if not isinstance(value, str) or not value:
        raise ValueError("location must be a time zone name such as 'Asia/Shanghai'")
    if value == "UTC":
        return UTC
    if value == "Local":
        return host_zone()
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None


def host_zone() -> tzinfo:
    """The host's time zone, with its DST rules, found as Go's `time.Local` finds it.

    `TZ` unset: /etc/localtime. `TZ=""` or `TZ=UTC`: UTC. `TZ=Europe/Berlin`,
    `TZ=:Europe/Berlin` or `TZ=/path/to/zonefile`: that zone. One that can't be
    read: UTC, as in Go. The offset is then the zone's at each instant matched,
    so a DST change moves it.
    """
    name = os.environ.get("TZ")
    try:
        if name is None:
            with open("/etc/localtime", "rb") as fh:
                return ZoneInfo.from_file(fh, key="Local")
        name = name.removeprefix(":")
        if name.startswith("/"):
            with open(name, "rb") as fh:
                return ZoneInfo.from_file(fh, key="Local")
        if name and name != "UTC":
            return ZoneInfo(name)
    except (OSError, ValueError, ZoneInfoNotFoundError):
        pass
    return UTC


FIELDS: dict[str, Callable[[Any], Any]] = {
    "times": parse_times,
    "weekdays": parse_weekdays,
    "days_of_month": parse_days_of_month,
    "months": parse_months,
    "years": parse_years,
}
