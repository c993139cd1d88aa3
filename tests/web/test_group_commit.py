"""Group commit (receiver.web.committer): concurrent accepts share one transaction,
and none is answered before its own row is committed."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from receiver.delivery.outbox import Outbox
from receiver.delivery.outbox_dedup import Accept
from receiver.delivery.outbox_rows import Pending
from receiver.errors import OutboxUnavailable
from receiver.web.committer import Committer
from tests.conftest import ROOT, Engine


def test_requests_that_arrive_during_a_commit_share_the_next_one() -> None:
    batches: list[list[int]] = []
    first_started, release = threading.Event(), threading.Event()

    def write(take: Callable[[], list[int]]) -> list[int]:
        batch = take()
        batches.append(list(batch))
        if len(batches) == 1:
            first_started.set()
            release.wait(10)
        return [n * 10 for n in batch]

    committer: Committer[int, int] = Committer(write, max_batch=8)
    results: dict[int, int] = {}

    def submit(n: int) -> None:
        results[n] = committer.submit(n)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    assert first_started.wait(10)
    others = [threading.Thread(target=submit, args=(n,)) for n in range(1, 13)]
    for t in others:
        t.start()
    while len(committer._queue) < 12:  # all queued behind the first commit
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert batches[0] == [0]
    assert sorted(len(b) for b in batches[1:]) == [4, 8]  # at most max_batch in one commit
    assert sorted(n for b in batches for n in b) == list(range(13))
    assert results == {n: n * 10 for n in range(13)}  # each gets its own row's result


GEVENT_CHILD = """
from gevent import monkey
monkey.patch_all()
import json
import gevent
from receiver.web.committer import Committer

native_ident = monkey.get_original("_thread", "get_ident")
native_sleep = monkey.get_original("time", "sleep")
writes = []

def write(take):
    batch = take()
    writes.append((native_ident(), len(batch)))
    native_sleep(0.002)  # the fsync: what arrives meanwhile waits for the next batch
    return [n * 10 for n in batch]

committer = Committer(write)
results = {}

def client(k):
    for i in range(5):
        n = k * 5 + i
        results[n] = committer.submit(n)

gevent.joinall([gevent.spawn(client, k) for k in range(32)])
print(json.dumps({
    "loop": native_ident(), "writes": writes, "right": results == {n: n * 10 for n in range(160)},
    "pool_threads": gevent.get_hub().threadpool.size,
}))
"""


def test_under_gevent_the_commits_run_on_one_thread_of_their_own_in_batches() -> None:
    """serve's worker: every batch is written on the committer's one native thread (its
    SQLite connection kept), never the loop's nor the hub's thread pool (a dispatch
    there and back per commit); the requests ready together share a batch."""
    run = subprocess.run([sys.executable, "-c", GEVENT_CHILD], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["right"]  # each request got its own row's result
    threads = {ident for ident, _ in out["writes"]}
    assert len(threads) == 1 and out["loop"] not in threads
    assert out["pool_threads"] == 0
    sizes = [rows for _, rows in out["writes"]]
    assert sum(sizes) == 160
    assert sizes[0] == 32  # the 32 first requests were ready in one turn of the loop
    print(f"\nbatches: {sizes}")
    assert len(sizes) < 160 / 2  # batches, not one commit a request


def test_a_failed_commit_fails_every_request_of_its_batch() -> None:
    def write(take: Callable[[], list[int]]) -> list[int]:
        raise OutboxUnavailable("outbox: disk I/O error")  # before it took its batch

    committer: Committer[int, int] = Committer(write)
    with pytest.raises(OutboxUnavailable, match="disk I/O error"):
        committer.submit(1)
    with pytest.raises(OutboxUnavailable):  # the committer goes on after a failure
        committer.submit(2)


def test_a_wrong_answer_from_the_write_fails_its_batch_and_the_committer_goes_on() -> None:
    calls = [0]

    def write(take: Callable[[], list[int]]) -> list[int]:
        calls[0] += 1
        batch = take()
        return [] if calls[0] == 1 else [n + 1 for n in batch]  # the first: a row short

    committer: Committer[int, int] = Committer(write)
    with pytest.raises(RuntimeError, match="0 results for 1 rows"):
        committer.submit(1)
    assert committer.submit(2) == 3  # not a request left waiting forever


def test_a_write_that_never_takes_its_batch_fails_it() -> None:
    def write(take: Callable[[], list[int]]) -> list[int]:
        return []

    committer: Committer[int, int] = Committer(write)
    with pytest.raises(RuntimeError, match="did not take its batch"):
        committer.submit(1)  # answered, not left queued for a write that never takes it


def test_a_batch_is_taken_once_the_write_holds_the_lock_with_what_queued_meanwhile() -> None:
    """What queues while a write waits for SQLite's write lock (another worker commits)
    rides in that write's batch, not in the next one."""
    batches: list[list[int]] = []
    waiting, locked = threading.Event(), threading.Event()

    def write(take: Callable[[], list[int]]) -> list[int]:
        if not batches:  # the first write waits for the lock, its batch not yet taken
            waiting.set()
            locked.wait(10)
        batches.append(take())
        return [n * 10 for n in batches[-1]]

    committer: Committer[int, int] = Committer(write)
    results: dict[int, int] = {}

    def submit(n: int) -> None:
        results[n] = committer.submit(n)

    threads = [threading.Thread(target=submit, args=(0,))]
    threads[0].start()
    assert waiting.wait(10)
    threads += [threading.Thread(target=submit, args=(n,)) for n in range(1, 6)]
    for t in threads[1:]:
        t.start()
    while len(committer._queue) < 6:
        threading.Event().wait(0.01)
    locked.set()
    for t in threads:
        t.join(10)
    assert batches == [[0, 1, 2, 3, 4, 5]]  # one commit, one fsync for all six
    assert results == {n: n * 10 for n in range(6)}


def test_a_failed_write_fails_what_it_would_have_taken_and_the_next_batch_is_fresh() -> None:
    calls = [0]

    def write(take: Callable[[], list[int]]) -> list[int]:
        calls[0] += 1
        if calls[0] == 1:
            raise OutboxUnavailable("outbox: database is locked")  # never got the lock
        return [n + 1 for n in take()]

    committer: Committer[int, int] = Committer(write)
    with pytest.raises(OutboxUnavailable, match="locked"):
        committer.submit(1)
    assert committer.submit(2) == 3
    assert committer._queue == []


def test_accept_many_takes_its_batch_under_the_write_lock(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path))
    box.accept_many([Accept(b"first", "alertmanager", None, "g")])  # the file exists
    held: list[bool] = []

    def take() -> list[Accept]:
        other = sqlite3.connect(tmp_path / "outbox.sqlite3", timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            held.append(False)
        except sqlite3.OperationalError as e:
            held.append("locked" in str(e))
        finally:
            other.close()
        return [Accept(b"a", "alertmanager", None, "g"), Accept(b"b", "grafana", "ops", "h")]

    out = box.accept_many(take)
    assert held == [True]  # another writer could not begin while the batch was taken
    assert [stored for _, stored in out] == [True, True]
    assert [p.body for p in box.pending()] == [b"first", b"a", b"b"]


def test_accept_many_commits_a_batch_with_duplicates_taken_in_order(engine: Engine) -> None:
    box = engine.outbox()
    batch = [
        Accept(b"a", "alertmanager", None, "g1", key="k1", window_s=300),
        Accept(b"b", "alertmanager", None, "g2", key="k2", window_s=300),
        Accept(b"a again", "alertmanager", None, "g1", key="k1", window_s=300),
        Accept(b"no key", "grafana", None, "g3"),
    ]
    out = box.accept_many(batch, now=1000.0)
    assert [stored for _, stored in out] == [True, True, False, True]
    assert out[2][0].id == out[0][0].id  # the duplicate answers with the first post's id
    assert [p.body for p in box.pending()] == [b"a", b"b", b"no key"]
    later = box.accept_many([batch[0]], now=1000.0 + 301)  # past the window: stored again
    assert later[0][1] is True and later[0][0].id not in {p.id for p, _ in out}
    plain = box.accept_many(
        [Accept(b"x", "grafana", "ops", "g4"), Accept(b"y", "grafana", None, "g5")]
    )
    assert [stored for _, stored in plain] == [True, True]  # no keys: RECEIVER_DEDUP_WINDOW=0
    bodies = {p.id: (p.body, p.receiver) for p in box.pending()}
    assert [bodies[p.id] for p, _ in plain] == [(b"x", "ops"), (b"y", None)]


def test_no_reply_before_its_rows_commit_when_the_worker_dies_between_write_and_commit(
    tmp_path: Path,
) -> None:
    """kill -9 after a batch's writes and before its commit: every acknowledged row is in
    the file after reopening, and no row of the lost batch was acknowledged."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.web.commit_crash_child", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
    acked: dict[str, int] = {}
    doomed: list[str] = []
    for line in proc.stdout.splitlines():
        word, *rest = line.split()
        if word == "ACK":
            acked[rest[0]] = int(rest[1])
        elif word == "DOOMED":
            doomed = rest
    assert len(doomed) >= 2  # a real batch was lost, not a lone row
    assert len(acked) >= 4  # and batches before it were acknowledged
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    stored = {body.decode(): i for i, body in db.execute("SELECT id, body FROM pending")}
    db.close()
    assert {n: stored.get(n) for n in acked} == acked  # every 2xx's row, under its id
    assert not set(doomed) & set(stored)  # the lost batch never committed
    assert not set(doomed) & set(acked)  # and none of it was answered


def test_two_replicas_that_take_one_notification_at_once_store_it_once(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two Alertmanager peers post one notification to two replicas at the same moment:
    the second replica's accept waits for the first's key, then counts a duplicate."""
    import psycopg

    first, second = (Outbox(str(tmp_path / n), database_url=postgres_url) for n in "ab")
    post = Accept(b"the notification", "alertmanager", None, "g", key="k", window_s=300)
    out: dict[str, tuple[Pending, bool]] = {}

    def second_replica() -> None:
        out["second"] = second.accept_many([post])[0]

    def while_the_first_is_uncommitted() -> None:  # the second replica's accept runs now
        thread.start()
        with psycopg.connect(postgres_url, autocommit=True) as db:
            for _ in range(1000):  # until it waits on the first's row (or 10 s)
                waiting = db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                threading.Event().wait(0.01)

    thread = threading.Thread(target=second_replica)
    out["first"] = first.accept_many([post], before_commit=while_the_first_is_uncommitted)[0]
    thread.join(30)
    assert out["first"][1] is True
    assert out["second"][1] is False  # a duplicate, answered with the first post's id
    assert out["second"][0].id == out["first"][0].id
    assert [p.id for p in first.pending()] == [out["first"][0].id]  # stored once
