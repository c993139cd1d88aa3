"""Client-side limits on a real SQLite file: rate, recipients per minute, per-user day."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from receiver.delivery.limits import DINGTALK_DAY, Limits, day_of, next_day
from tests.conftest import Engine

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=DINGTALK_DAY).timestamp()


def test_calls_per_second(engine: Engine) -> None:
    limits = engine.limits(rate=3)
    assert [limits.reserve(1, now=T0 + i * 0.01) for i in range(3)] == [0, 0, 0]
    wait = limits.reserve(1, now=T0 + 0.5)
    assert 0.49 < wait <= 0.51  # the first call of the window leaves it at T0 + 1
    assert limits.reserve(1, now=T0 + 1.001) == 0


def test_a_full_window_of_many_calls_after_the_log_emptied(engine: Engine) -> None:
    """SQLite finds the call a window back by its rowid: still right at a high rate, and
    after every call has left the log (its rowids start again)."""
    limits = engine.limits(rate=500, per_minute=10**6)
    for start in (T0, T0 + 200):  # 200 s on, the first 500 calls leave the log
        assert all(limits.reserve(1, now=start + i * 0.001) == 0 for i in range(500))
        wait = limits.reserve(1, now=start + 0.6)
        assert 0.39 < wait <= 0.41  # the window's first call leaves it at start + 1
        assert limits.reserve(1, now=start + 1.0001) == 0
    assert len(engine.rows("SELECT at FROM send_log", "limits")) == 501


def test_slow_rates_space_calls_out(engine: Engine) -> None:
    limits = engine.limits(rate=0.5)
    assert limits.reserve(1, now=T0) == 0
    assert limits.reserve(1, now=T0 + 1) > 0.9
    assert limits.reserve(1, now=T0 + 2.01) == 0


def test_recipients_per_minute(engine: Engine) -> None:
    limits = engine.limits(rate=1000, per_minute=250)
    assert limits.reserve(100, now=T0) == 0
    assert limits.reserve(100, now=T0 + 10) == 0
    wait = limits.reserve(100, now=T0 + 20)
    assert 39.9 < wait <= 40  # room again when the first 100 are a minute old
    assert limits.reserve(100, now=T0 + 60.01) == 0


def test_the_minute_total_survives_a_restart_and_an_upgrade(tmp_path: Path) -> None:
    path = str(tmp_path / "l.sqlite3")
    assert Limits(path, rate=1000, per_minute=250).reserve(100, now=T0) == 0
    assert Limits(path, rate=1000, per_minute=250).reserve(100, now=T0 + 1) == 0
    with sqlite3.connect(path) as db:  # a file from before the total was kept
        db.execute("DROP TABLE send_total")
    limits = Limits(path, rate=1000, per_minute=250)
    assert 57.9 < limits.reserve(100, now=T0 + 2) <= 58  # 200 of 250 sent; room at T0 + 60
    assert limits.reserve(100, now=T0 + 60.01) == 0  # the first 100 aged out of the total
    assert limits.reserve(100, now=T0 + 60.02) > 0
    with sqlite3.connect(path) as db:  # an older version aged rows out without the total
        db.execute("UPDATE send_total SET recipients=100000")
    wait = Limits(path, rate=1000, per_minute=250).reserve(100, now=T0 + 60.03)
    assert 0.96 < wait <= 0.98  # 200 of 250 in the log: room once T0 + 1 ages out


def test_daily_cap_per_user_with_a_warning_at_80_percent(engine: Engine) -> None:
    limits = engine.limits(daily=5)
    crossed = [limits.count_sent(["a", "b"] if i < 2 else ["a"], now=T0) for i in range(5)]
    assert crossed == [[], [], [], ["a"], []]  # 4 of 5 is 80 %
    assert limits.over_daily(["a", "b", "c"], now=T0) == ["a"]
    assert limits.over_daily(["a"], now=next_day(T0)) == []  # a new DingTalk day


def test_the_day_is_china_time() -> None:
    midnight = datetime(2026, 11, 29, 0, 0, tzinfo=DINGTALK_DAY).timestamp()
    assert next_day(T0) == midnight
    assert day_of(midnight - 1) == "2026-11-28" and day_of(midnight) == "2026-11-29"


def test_a_clock_set_back_does_not_hold_sends_for_the_jump(engine: Engine) -> None:
    limits = engine.limits(rate=10, per_minute=250)
    for i in range(10):
        assert limits.reserve(20, now=T0 + i * 0.01) == 0
    back = T0 - 3600  # NTP steps the clock back an hour
    assert limits.reserve(20, now=back) <= 1.0  # at most one window, not an hour
    assert limits.reserve(20, now=back + 1.1) == 0
    assert 0 < limits.reserve(100, now=back + 2) <= 60  # the minute is full: at most a minute


def test_a_call_bigger_than_the_minute_waits_for_an_empty_minute(engine: Engine) -> None:
    limits = engine.limits(rate=1000, per_minute=50)
    assert limits.reserve(40, now=T0) == 0
    wait = limits.reserve(120, now=T0 + 1)  # 100 userids and 20 departments: one call
    assert 58.9 < wait <= 59  # alone, once the 40 are a minute old; not on top of them
    assert limits.reserve(120, now=T0 + 60.01) == 0


def test_admit_holds_back_the_capped_and_counts_only_the_others(engine: Engine) -> None:
    limits = engine.limits(rate=1000, per_minute=3, daily=1)
    limits.count_sent(["a"], now=T0)  # a had the day's one message
    assert limits.admit(["a", "b"], 0, today=T0, now=T0) == (["a"], 0.0)
    assert limits.reserve(2, now=T0 + 1) == 0  # 1 + 2 of 3: a was not counted
    assert limits.reserve(1, now=T0 + 2) > 0  # the minute is full
    over, wait = limits.admit(["b"], 1, today=T0, now=T0 + 3)
    assert over == [] and 57.9 < wait <= 58  # room for 2 when the call of T0 + 1 ages out
    assert limits.admit(["a"], 0, today=T0, now=T0 + 4) == (["a"], 0.0)  # no one left: no wait
    assert limits.admit(["a"], 0, today=next_day(T0), now=T0 + 5)[0] == []  # a new day


def test_calls_leave_the_log_when_the_minute_would_be_full_or_after_two_minutes(
    engine: Engine,
) -> None:
    limits = engine.limits(rate=1000, per_minute=250)
    logged = lambda: engine.rows("SELECT at FROM send_log ORDER BY at", "limits")  # noqa: E731
    assert limits.reserve(100, now=T0) == 0
    assert limits.reserve(100, now=T0 + 70) == 0  # 200 counted, under 250: T0's stays
    assert len(logged()) == 2
    assert limits.reserve(100, now=T0 + 75) == 0  # 300 would be over: T0's leaves first
    assert [r[0] for r in logged()] == [T0 + 70, T0 + 75]
    assert 53.9 < limits.reserve(100, now=T0 + 76) <= 54  # 200 in the minute: wait for T0+70
    assert limits.reserve(10, now=T0 + 200) == 0  # two minutes old: gone, total and all
    assert [r[0] for r in logged()] == [T0 + 200]
    assert limits.reserve(240, now=T0 + 201) == 0  # 250: the total forgot the old ones


def test_counts_from_two_replicas_at_once_add_up_and_warn_once(engine: Engine) -> None:
    """count_sent takes no lock on PostgreSQL: each upsert is atomic on its row."""
    a, b = engine.limits(daily=100), engine.limits(daily=100)
    crossed: list[list[str]] = []

    def count(limits: Limits) -> None:
        for _ in range(50):
            crossed.append(limits.count_sent(["u"], now=T0))

    threads = [threading.Thread(target=count, args=(x,)) for x in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [c for c in crossed if c] == [["u"]]  # at 80 of 100, by one of them
    assert a.over_daily(["u"], now=T0) == ["u"]  # 100 of 100
    assert engine.limits(daily=101).over_daily(["u"], now=T0) == []  # exactly 100
