"""On-call rotations: who is on call at a given instant. Pure.

Handoffs are wall-clock times in the schedule's timezone: a daily rotation with
`handoff: "10:00"` changes at 10:00 local time every day, so across a DST change
that shift is an hour shorter or longer. `<N>h` rotations step N wall-clock
hours from the first handoff. A handoff that falls in a DST gap moves forward by
the gap (02:30 becomes 03:30); one in a repeated hour happens at its first
occurrence. A shift wholly inside a gap (`1h` on the spring-forward night) is
therefore empty, and its member's turn is skipped.

The first handoff is the first `handoff` moment on or after `start` (00:00 local);
there `members[0]` takes over. Before it, the rotation is extended backwards, so
someone is always on call. An override replaces whoever is on call for
`[from, to)`; where overrides overlap, the one listed last wins. Overrides do
not shift the rotation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_HANDOFF = re.compile(r"^(?:([A-Za-z]+)\s+)?([01]?[0-9]|2[0-3]):([0-5][0-9])\Z")
_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAYS = {n: i for i, n in enumerate(_NAMES)} | {n[:3]: i for i, n in enumerate(_NAMES)}
_ROTATION = re.compile(r"^([1-9][0-9]*)h\Z")
_MAX_STEPS = 10_000  # bounds the search for the next change of person


@dataclass(frozen=True)
class Override:
    user: str
    start: datetime  # aware
    end: datetime


@dataclass(frozen=True)
class Shift:
    user: str
    start: datetime
    end: datetime | None  # None: nobody else ever takes over


def parse_rotation(value: str) -> timedelta:
    """`daily`, `weekly` or `<N>h` as a wall-clock step."""
    if value == "daily":
        return timedelta(days=1)
    if value == "weekly":
        return timedelta(weeks=1)
    m = _ROTATION.match(value)
    if not m:
        raise ValueError(f"rotation {value!r}: use daily, weekly or <N>h such as 12h")
    return timedelta(hours=int(m.group(1)))


def parse_handoff(value: str) -> tuple[int | None, time]:
    """`"10:00"` or `"Mon 10:00"`: (weekday with Monday = 0, or None; time of day)."""
    m = _HANDOFF.match(value.strip())
    day = m.group(1) if m else None
    if not m or (day is not None and day.lower() not in _WEEKDAYS):
        raise ValueError(f"handoff {value!r}: use HH:MM or a weekday and HH:MM, as 'Mon 10:00'")
    return (
        _WEEKDAYS[day.lower()] if day else None,
        time(int(m.group(2)), int(m.group(3))),
    )


def _utc(naive_local: datetime, tz: tzinfo) -> datetime:
    """A wall-clock time to UTC; fold=0 puts gap times after the gap, repeats first."""
    return naive_local.replace(tzinfo=tz, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    name: str
    tz: tzinfo
    step: timedelta
    first: datetime  # naive local wall-clock time of the first handoff
    members: tuple[str, ...]
    overrides: tuple[Override, ...] = ()

    @classmethod
    def build(
        cls,
        name: str,
        tz: tzinfo,
        rotation: str,
        handoff: str,
        start: date,
        members: tuple[str, ...],
        overrides: tuple[Override, ...] = (),
    ) -> Schedule:
        step = parse_rotation(rotation)
        day, at = parse_handoff(handoff)
        if day is not None and rotation != "weekly":
            raise ValueError("a weekday in handoff needs rotation: weekly")
        first = datetime.combine(start, at)
        if day is not None:
            first += timedelta(days=(day - start.weekday()) % 7)
        return cls(name, tz, step, first, members, overrides)

    def handoff(self, k: int) -> datetime:
        """The k-th rotation handoff (k may be negative), in UTC."""
        return _utc(self.first + k * self.step, self.tz)

    def _index(self, t: datetime) -> int:
        """The k with handoff(k) <= t < handoff(k + 1)."""
        local = t.astimezone(self.tz).replace(tzinfo=None)
        k = (local - self.first) // self.step
        while self.handoff(k) > t:
            k -= 1
        while self.handoff(k + 1) <= t:
            k += 1
        return k

    def rotation_user(self, t: datetime) -> str:
        return self.members[self._index(t) % len(self.members)]

    def on_call(self, t: datetime) -> str:
        """Who is on call at `t` (aware): an override if one covers it, else the rotation."""
        for o in reversed(self.overrides):
            if o.start <= t < o.end:
                return o.user
        return self.rotation_user(t)

    def _changes_after(self, t: datetime) -> Iterator[datetime]:
        """Every instant after `t` where the person might change, ascending."""
        edges = sorted({e for o in self.overrides for e in (o.start, o.end) if e > t})
        k = self._index(t) + 1
        for _ in range(_MAX_STEPS):
            h = self.handoff(k)
            while edges and edges[0] <= h:
                yield edges.pop(0)
            yield h
            k += 1

    def _changes_before(self, t: datetime) -> Iterator[datetime]:
        """Every instant at or before `t` where the person might change, descending."""
        edges = sorted({e for o in self.overrides for e in (o.start, o.end) if e <= t})
        k = self._index(t)
        for _ in range(_MAX_STEPS):
            h = self.handoff(k)
            while edges and edges[-1] >= h:
                yield edges.pop()
            yield h
            k -= 1

    def shift_at(self, t: datetime) -> Shift:
        """The unbroken stretch of one person's duty that contains `t`."""
        user = self.on_call(t)
        start = t
        for c in self._changes_before(t):
            if self.on_call(c - timedelta(microseconds=1)) != user:
                start = c
                break
        end = next((c for c in self._changes_after(t) if self.on_call(c) != user), None)
        return Shift(user, start, end)

    def shifts(self, t: datetime, count: int) -> list[Shift]:
        """The shift at `t` and the `count - 1` after it."""
        out = [self.shift_at(t)]
        while len(out) < count and out[-1].end is not None:
            out.append(self.shift_at(out[-1].end))
        return out
