"""Each robot's limiter: under 20 posts a minute, shared by processes, and DingTalk's block."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from receiver.robots.limiter import WINDOW_S, RobotLimiter
from tests.conftest import Engine

T0 = 1_800_000_000.0


def test_room_then_a_wait_until_the_oldest_ages_out(engine: Engine) -> None:
    lim = engine.robot_limiter(per_minute=18)
    slots = [lim.reserve("db", T0 + i) for i in range(18)]
    assert [s.wait for s in slots] == [0.0] * 18
    assert [s.left for s in slots] == list(range(17, -1, -1))
    full = lim.reserve("db", T0 + 18)
    assert full.wait == pytest.approx(WINDOW_S - 18)
    assert lim.reserve("other", T0 + 18).wait == 0  # per robot
    again = lim.reserve("db", T0 + WINDOW_S + 0.5)  # the first aged out: one slot
    assert again.wait == 0 and again.left == 0


def test_never_more_than_the_limit_in_any_window(engine: Engine) -> None:
    lim = engine.robot_limiter(per_minute=18)
    posts: list[float] = []
    t = T0
    while t < T0 + 600:  # ten minutes of a post wanted every 0.5 s
        if lim.reserve("db", t).wait == 0:
            posts.append(t)
        t += 0.5
    assert max(sum(1 for p in posts if s <= p < s + 60) for s in posts) <= 18
    assert len(posts) >= 18 * 9  # and it does not starve


def test_a_block_holds_every_post_until_it_ends(engine: Engine) -> None:
    lim = engine.robot_limiter()
    lim.block("db", T0 + 600)
    assert lim.reserve("db", T0).wait == pytest.approx(600)
    lim.block("db", T0 + 10)  # a shorter block never shortens a longer one
    assert lim.reserve("db", T0 + 599).wait == pytest.approx(1)
    assert lim.reserve("db", T0 + 600).wait == 0


def test_the_limit_is_checked() -> None:
    with pytest.raises(ValueError, match="1..20"):
        RobotLimiter(":memory:", per_minute=21)


def _take(path: str, url: str | None, n: int, out: multiprocessing.Queue[int]) -> None:
    lim = RobotLimiter(path, per_minute=18, database_url=url)
    out.put(sum(1 for _ in range(n) if lim.reserve("db", T0).wait == 0))


def test_processes_share_the_count(tmp_path: Path, engine: Engine) -> None:
    """Three processes (on PostgreSQL: as if three replicas) share one robot's minute."""
    path = str(tmp_path / "limits.sqlite3")
    RobotLimiter(path, database_url=engine.database_url)
    out: multiprocessing.Queue[int] = multiprocessing.Queue()
    args = (path, engine.database_url, 10, out)
    procs = [multiprocessing.Process(target=_take, args=args) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sum(out.get(timeout=5) for _ in procs) == 18


def test_the_setting_is_checked_where_it_is_read() -> None:
    from receiver.settings import Settings

    assert Settings.from_env({}).robot_per_minute == 18
    assert Settings.from_env({"RECEIVER_ROBOT_PER_MINUTE": "20"}).robot_per_minute == 20
    for bad in ("21", "0", "many"):
        with pytest.raises(ValueError, match="RECEIVER_ROBOT_PER_MINUTE"):
            Settings.from_env({"RECEIVER_ROBOT_PER_MINUTE": bad})
