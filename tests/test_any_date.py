"""The clock-sensitive units give the same answers on any date, not only near the day
a test was written. "Today" is moved across years by pinning `time.time`, which every
one of them reads (monkeypatch is for env vars and the clock); each then runs the same
scenario and must see the same outcome. A unit that read a second clock (a purge on
the real time while its caller passed `now`, as Limits.count_sent once did) fails here.

The whole suite under libfaketime is the other half: see the README, Development.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.delivery.limits import Limits, next_day
from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import SendResult
from receiver.dingtalk.tokenstore import SqliteKv
from receiver.directory.store import DirectoryStore, User
from receiver.directory.sync import DirectorySync
from receiver.errors import RetryableError
from receiver.routing.schedule import Schedule
from receiver.settings import Settings

SH = ZoneInfo("Asia/Shanghai")
TODAYS = [
    datetime(2026, 11, 28, 12, 0, tzinfo=UTC),  # the day the first of these tests was written
    datetime(2027, 12, 31, 23, 59, 30, tzinfo=SH),  # a year's last minute, DingTalk's day
    datetime(2028, 2, 29, 16, 0, tzinfo=UTC),  # a leap day, at DingTalk's midnight
    datetime(2029, 3, 1, 12, 0, tzinfo=UTC),
    datetime(2031, 7, 15, 3, 0, tzinfo=UTC),
    datetime(2037, 12, 31, 15, 59, 59, tzinfo=UTC),
]
MSG = {"msgtype": "text", "text": {"content": "x"}}


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=TODAYS, ids=[t.isoformat() for t in TODAYS])
def clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    c = Clock(request.param.timestamp())
    monkeypatch.setattr(time, "time", c)
    yield c


def entry(userid: str) -> Entry:
    return Entry(receiver="ops", msg=MSG, userids=(userid,))


# -- limits: the per-user daily cap, on DingTalk's day ---------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.datetimes(datetime(2026, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)))
def test_the_daily_cap_holds_on_any_day_and_resets_the_next(today: datetime) -> None:
    """With the caller's `now` (the real clock untouched: a unit that reads it as well
    disagrees with its caller by years), and then with `time.time` itself moved."""
    import tempfile

    for pin in (False, True):
        with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
            c = Clock(today.timestamp())
            if pin:
                mp.setattr(time, "time", c)
            limits = Limits(str(Path(tmp) / "limits.sqlite3"), daily=5)
            crossed = [limits.count_sent(["a"], now=c()) for _ in range(5)]
            assert crossed == [[], [], [], ["a"], []]  # the warning at 80 %
            assert limits.over_daily(["a", "b"], now=c()) == ["a"]
            c.now = next_day(c.now) - 0.001
            assert limits.over_daily(["a"], now=c()) == ["a"]  # still DingTalk's same day
            assert limits.count_sent(["b"], now=c()) == []
            c.advance(0.002)
            assert limits.over_daily(["a"], now=c()) == []  # a new DingTalk day
            assert limits.reserve(1, now=c()) == 0.0


# -- schedules: who is on call, counted from the rotation's start ----------------------------
@pytest.mark.parametrize("today", TODAYS, ids=[t.isoformat() for t in TODAYS])
def test_a_weekly_rotation_turns_on_any_date(today: datetime) -> None:
    s = Schedule.build("s", UTC, "weekly", "Mon 10:00", date(2026, 11, 30), ("a", "b", "c"))
    first = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    weeks = (today - first) // timedelta(weeks=1)
    assert s.on_call(today) == "abc"[weeks % 3]
    assert s.on_call(today + timedelta(weeks=1)) == "abc"[(weeks + 1) % 3]


# -- the outbox: give-up age, backoff, purge of sent items -----------------------------------
class Down:
    def async_send(
        self, userid_list: list[str], msg: dict[str, object], dept_id_list: list[int]
    ) -> list[SendResult]:
        raise RetryableError("DingTalk /topapi: HTTP 502")


def test_an_item_gives_up_after_its_age_on_any_date(clock: Clock, tmp_path: Path) -> None:
    box = Outbox(str(tmp_path))
    (item_id,) = box.enqueue([entry("a")], source="alertmanager", group_key="g")
    worker = Worker(box, Down(), give_up_after_s=3600, backoff_min_s=1, backoff_max_s=1,
                    clock=time.time)  # fmt: skip
    worker.run_once()
    assert box.get(item_id).state == "retry"  # type: ignore[union-attr]
    assert worker.run_once() == 0  # its backoff has not passed on this clock
    clock.advance(30)
    worker.run_once()
    assert box.get(item_id).state == "retry"  # type: ignore[union-attr]
    clock.advance(3600)
    worker.run_once()
    assert box.get(item_id).state == "dead"  # type: ignore[union-attr]


def test_sent_items_are_purged_after_the_retention_on_any_date(
    clock: Clock, tmp_path: Path
) -> None:
    box = Outbox(str(tmp_path))
    (item_id,) = box.enqueue([entry("a")], source="alertmanager", group_key="g")
    assert [i.id for i in box.claim()] == [item_id]
    box.mark_sent(item_id, [1001], followup_after_s=60)
    # the getsendresult follow-up is due a minute after the send, on this clock
    clock.advance(30)
    assert box.claim_followups() == []
    clock.advance(31)
    assert [i.id for i in box.claim_followups()] == [item_id]
    clock.advance(6 * 86400)
    assert box.purge_sent(7 * 86400) == 0
    clock.advance(86400)
    assert box.purge_sent(7 * 86400) == 1


# -- the token cache and the directory sync interval -----------------------------------------
def test_a_cached_token_expires_on_its_own_clock(clock: Clock, tmp_path: Path) -> None:
    kv = SqliteKv(str(tmp_path))
    kv.set("token", "t-1", ttl=7200 - 300)
    clock.advance(6800)
    assert kv.get("token") == "t-1"
    clock.advance(101)
    assert kv.get("token") is None


def test_the_directory_is_synced_again_after_its_interval(clock: Clock, tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), app_key="k", app_secret="s", agent_id="1",
                        directory_sync_interval=6 * 3600)  # fmt: skip
    store = DirectoryStore(str(tmp_path))
    store.replace([], [User("u1", "张三")])  # synced "now", on this clock
    sync = DirectorySync(settings, lambda: pytest.fail("not due: no call"), store=store)
    assert sync.maybe_sync() is False
    clock.advance(6 * 3600 - 1)
    assert not sync.due(time.time())
    clock.advance(1)
    assert sync.due(time.time())


@pytest.mark.parametrize("today", TODAYS, ids=[t.isoformat() for t in TODAYS])
def test_the_directory_sync_interval_with_the_callers_now(today: datetime, tmp_path: Path) -> None:
    """The same with `now` passed and the real clock left alone: one clock, the caller's."""
    settings = Settings(data_dir=str(tmp_path), app_key="k", app_secret="s", agent_id="1",
                        directory_sync_interval=6 * 3600)  # fmt: skip
    store = DirectoryStore(str(tmp_path))
    now = today.timestamp()
    store.replace([], [User("u1", "张三")], now=now)
    sync = DirectorySync(settings, lambda: pytest.fail("not due: no call"), store=store)
    assert sync.maybe_sync(now=now + 6 * 3600 - 1) is False
    assert sync.due(now + 6 * 3600)
