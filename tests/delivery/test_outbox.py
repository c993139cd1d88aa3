"""The outbox state machine on each engine (a SQLite file, a real PostgreSQL), and the worker
over the fake DingTalk."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest

from receiver.delivery.outbox import STATES, Outbox
from receiver.delivery.pausing import backoff
from receiver.delivery.pipeline import Entry
from receiver.delivery.process import DryRunSender
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client
from receiver.errors import OutboxUnavailable
from receiver.settings import Settings
from tests.conftest import Engine
from tests.fakes.dingtalk import FakeDingTalk

MSG = {"msgtype": "text", "text": {"content": "磁盘满了"}}


def entry(*userids: str) -> Entry:
    return Entry(receiver="ops", msg=MSG, userids=userids)


def test_enqueue_commits_and_claim_leases(engine: Engine) -> None:
    box = engine.outbox()
    ids = box.enqueue([entry("a"), entry("b")], source="alertmanager", group_key="g")
    assert box.counts()["queued"] == 2
    claimed = box.claim(limit=10, lease_s=60)
    assert [i.id for i in claimed] == ids
    assert [i.userids for i in claimed] == [("a",), ("b",)]
    assert box.claim() == []  # leased, not due again
    assert box.counts()["sending"] == 2


def test_expired_lease_goes_back_to_the_queue(engine: Engine) -> None:
    box = engine.outbox()
    (item_id,) = box.enqueue([entry("a")], source="alertmanager", group_key="g")
    box.claim(lease_s=60)
    # A second process, later than the lease: the first claimer is presumed dead.
    (again,) = engine.outbox().claim(now=10**10)
    assert again.id == item_id


def test_retry_then_sent_records_attempts(engine: Engine) -> None:
    box = engine.outbox()
    (item_id,) = box.enqueue([entry("a")], source="alertmanager", group_key="g")
    box.claim()
    box.mark_retry(item_id, delay_s=0, error="HTTP 500", errcode=None)
    assert box.counts()["retry"] == 1
    (item,) = box.claim()
    assert item.attempts == 1 and item.last_error == "HTTP 500"
    box.mark_sent(item_id, [1001])
    done = box.get(item_id)
    assert done is not None and done.state == "sent" and done.task_ids == (1001,)


def test_unwritable_outbox_raises_outbox_unavailable(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores file modes; make the database path a directory instead
        (tmp_path / "outbox.sqlite3").mkdir()
    else:
        tmp_path.chmod(0o500)
    with pytest.raises(OutboxUnavailable):
        Outbox(str(tmp_path)).enqueue([entry("a")], source="alertmanager", group_key="g")


def test_reads_and_empty_polls_do_not_wait_for_the_write_lock(tmp_path: Path) -> None:
    """Delivery's polls and /readyz must not queue behind (or hold up) a webhook's commit."""
    import sqlite3
    import time

    box = Outbox(str(tmp_path))
    box.enqueue([entry("a")], source="alertmanager", group_key="g")
    writer = sqlite3.connect(box.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process is committing
    try:
        start = time.monotonic()
        assert box.counts()["queued"] == 1 and len(box.items()) == 1
        assert box.due_pending() == [] and box.claim_followups() == []
        assert box.claim(now=0) == []  # nothing due: no write lock needed to say so
        assert time.monotonic() - start < 1  # a write would have waited 5 s, then failed
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_worker_sends_and_records_task_ids(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    box = Outbox(live_settings.data_dir)
    box.enqueue([entry("a", "b")], source="alertmanager", group_key="g")
    assert Worker(box, Client(live_settings)).run_once() == 1
    (item,) = box.items()
    assert item.state == "sent" and item.task_ids == (1001,)
    (req,) = fake_dingtalk.sends()
    assert req.body is not None and req.body["userid_list"] == "a,b" and req.body["msg"] == MSG


def test_a_platform_failure_pauses_everyone_without_counting_and_a_permanent_one_kills(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    box = Outbox(live_settings.data_dir)
    box.enqueue([entry("a")], source="alertmanager", group_key="g1")
    box.enqueue([entry("b")], source="alertmanager", group_key="g2")
    fake_dingtalk.fail("asyncsend_v2", times=1, status=503, body={})
    fake_dingtalk.fail("asyncsend_v2", times=1, body={"errcode": 40035, "errmsg": "bad param"})
    worker = Worker(box, Client(live_settings), backoff_min_s=0.01)
    worker.run_once()  # the 503 pauses sending: the batch stops, nothing is counted
    first, second = box.items()
    assert (first.state, first.attempts, second.state) == ("queued", 0, "queued")
    assert [h["outcome"] for h in box.history(first.id)] == ["paused"]
    pause = box.pause_state()
    assert pause is not None and pause.reason == "http_5xx" and pause.suspect == first.id
    time.sleep(0.02)
    worker.run_once()  # the probe tries the other message; DingTalk answers about it
    first, second = box.items()
    assert second.state == "dead" and second.errcode == 40035
    assert box.pause_state() is None
    # `first` alone failed, and the next call went through: that failure was its own
    assert (first.state, first.attempts) == ("retry", 1)


def test_retryable_failure_goes_dead_after_the_give_up_age(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    box = Outbox(live_settings.data_dir)
    box.enqueue([entry("a")], source="alertmanager", group_key="g")
    fake_dingtalk.fail("asyncsend_v2", times=1, status=500, body={})
    Worker(box, Client(live_settings), give_up_after_s=0).run_once()
    assert box.items()[0].state == "dead"


def test_dry_run_has_its_own_state_and_log_event(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(settings.data_dir)
    msg = {
        "msgtype": "markdown",
        "markdown": {"title": "[告警] DiskFull", "text": "### 磁盘满了\n- host: db1"},
    }
    box.enqueue([Entry("ops", msg, ("a",))], source="alertmanager", group_key="g")
    with caplog.at_level(logging.INFO):
        Worker(box, DryRunSender()).run_once()
    (item,) = box.items()
    assert item.state == "dry_run" and item.task_ids == ()
    assert box.counts()["dry_run"] == 1 and box.counts()["sent"] == 0
    events = [r.getMessage() for r in caplog.records]
    assert any(e.startswith(f"dry_run_stored id={item.id} receiver=ops") for e in events)
    assert not any(e.startswith("sent id=") for e in events)
    (logged,) = [e for e in events if e.startswith("dry_run to=a")]
    # readable: the text as lines, not a dict repr with \\n escapes
    assert logged.splitlines()[1:] == ["[告警] DiskFull", "### 磁盘满了", "- host: db1"]
    assert box.purge_sent(0) == 1  # retention applies to it as to sent items


OLD_SCHEMA = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'retry', 'dead')),
    source TEXT NOT NULL, receiver TEXT NOT NULL, group_key TEXT NOT NULL, msg TEXT NOT NULL,
    userids TEXT NOT NULL, departments TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, lease_until REAL, task_ids TEXT, errcode INTEGER,
    last_error TEXT, sent_at REAL
);
INSERT INTO outbox (id, created_at, updated_at, state, source, receiver, group_key, msg,
    userids, departments, next_attempt_at)
    VALUES (7, 1, 1, 'queued', 'alertmanager', 'ops', 'g', '{"msgtype":"text","text":{}}',
            'a', '', 1);
INSERT INTO outbox (id, created_at, updated_at, state, source, receiver, group_key, msg,
    userids, departments, next_attempt_at)
    VALUES (9, 1, 1, 'sent', 'alertmanager', 'ops', 'g', '{}', 'b', '', 1);
DELETE FROM outbox WHERE id=9;
"""


def test_an_outbox_from_before_dry_run_is_migrated(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        db.executescript(OLD_SCHEMA)
    box = Outbox(str(tmp_path))
    (old,) = box.items()
    assert (old.id, old.state, old.userids) == (7, "queued", ("a",))
    Worker(box, DryRunSender()).run_once()
    assert box.get(7).state == "dry_run"  # type: ignore[union-attr]
    # the AUTOINCREMENT counter survives the rebuild: a purged id is never given again
    (new,) = box.enqueue([entry("c")], source="alertmanager", group_key="g")
    assert new == 10
    Outbox(str(tmp_path))  # opening it again is a no-op
    assert [i.id for i in box.items()] == [10, 7]


@pytest.mark.parametrize("attempts", range(0, 30, 3))
def test_backoff_is_capped_and_jittered(attempts: int) -> None:
    delays = {backoff(attempts, base=1, cap=300) for _ in range(20)}
    step = min(300, 2**attempts)
    assert all(step / 2 <= d <= step for d in delays)
    assert len(delays) > 1


def test_a_retrying_item_holds_back_later_items_of_its_group_for_the_same_user(
    engine: Engine,
) -> None:
    box = engine.outbox()
    first, second, other, other_group = (
        box.enqueue([entry(*u)], source="alertmanager", group_key=g)[0]
        for u, g in ((("a", "b"), "g"), (("a", "c"), "g"), (("d",), "g"), (("a",), "h"))
    )
    # `second` is not a newer state of `first`'s group for the same people (b is not
    # among them), so it is not superseded: it waits for `first`.
    (head,) = box.claim(limit=1)
    box.mark_retry(head.id, delay_s=3600, error="HTTP 500", errcode=None)
    # `second` shares "a" with the retrying `first` in group g: it waits; the item of
    # another group to "a" does not, nor does `other`, which shares no one.
    assert [i.id for i in box.claim()] == [other, other_group]
    assert box.waiting_behind() == {second: first}
    box.requeue(first)
    assert [i.id for i in box.claim()] == [first]
    box.mark_sent(first, [1])
    assert [i.id for i in box.claim()] == [second]


def test_a_live_lease_blocks_and_a_held_item_does_not(engine: Engine) -> None:
    box = engine.outbox()
    ids = [box.enqueue([entry("a", u)], source="am", group_key="g")[0] for u in "bcd"]
    assert [i.id for i in box.claim(limit=1, owner="p1")] == [ids[0]]
    assert box.claim(owner="p2") == []  # ids[0] is being sent by p1: the rest wait
    box.hold(ids[0], until=10**10, reason="daily limit")
    assert [i.id for i in box.claim(owner="p2")] == [ids[1]]  # a held item does not block


def test_hold_moves_only_the_given_users_to_a_held_item(engine: Engine) -> None:
    box = engine.outbox()
    (item_id,) = box.enqueue([entry("a", "b", "c")], source="am", group_key="g")
    box.claim()
    held_id = box.hold(item_id, until=10**10, reason="daily limit", userids=["b"])
    item, held = box.get(item_id), box.get(held_id)
    assert item is not None and held is not None
    assert item.userids == ("a", "c") and item.state == "sending"
    assert held.userids == ("b",) and held.state == "queued" and held.msg == MSG
    assert held.hold_reason == "daily limit" and held.next_attempt_at == 10**10
    assert [h["outcome"] for h in box.history(held_id)] == ["held"]


def test_owner_checks_and_release_of_a_dead_owner(engine: Engine) -> None:
    box = engine.outbox()
    (item_id,) = box.enqueue([entry("a")], source="am", group_key="g")
    box.claim(owner="host:1:1")
    assert not box.renew(item_id, "host:2:2", 60)
    box.mark_retry(item_id, delay_s=0, error="x", errcode=None, owner="host:2:2")
    assert box.counts()["sending"] == 1  # not p2's to mark
    assert box.owners() == {"host:1:1"}
    assert box.release_owner("host:1:1") == 1
    assert box.counts()["queued"] == 1


def test_requeue_dead_and_purge_sent(engine: Engine) -> None:
    box = engine.outbox()
    a, b = (box.enqueue([entry(u)], source="am", group_key="g")[0] for u in "ab")
    box.claim()
    box.mark_dead(a, error="DingTalk errcode 40035: bad", errcode=40035)
    box.mark_sent(b, [7], followup_after_s=60)
    assert box.requeue() == 1 and box.counts()["queued"] == 1
    assert box.purge_sent(3600) == 0
    assert box.purge_sent(0) == 1
    assert box.get(b) is None and box.history(b) == []
    outcomes = [h["outcome"] for h in box.history(a)]
    assert outcomes == ["dead", "requeued"]


def test_an_outbox_from_the_first_schema_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    from receiver.delivery.outbox_schema import OUTBOX_TABLE, SCHEMA

    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    first_states = "'queued', 'sending', 'sent', 'retry', 'dead'"
    db.executescript(OUTBOX_TABLE.format(states=first_states) + ";" + SCHEMA)
    db.execute(
        "INSERT INTO outbox (created_at, updated_at, state, source, receiver, group_key, msg,"
        " userids, departments, next_attempt_at) VALUES (1, 1, 'queued', 'am', 'ops', 'g', '{}',"
        " 'a', '', 1)"
    )
    db.commit()
    db.close()
    (item,) = Outbox(str(tmp_path)).claim()
    assert item.userids == ("a",) and item.due_since == 1 and item.hold_reason is None


def test_requeue_of_item_0_is_not_requeue_of_every_dead_item(engine: Engine) -> None:
    """`outbox retry 0` names an item that does not exist; it must not resend all dead items."""
    box = engine.outbox()
    (a,) = box.enqueue([entry("a")], source="am", group_key="g")
    box.claim()
    box.mark_dead(a, error="DingTalk errcode 40035: bad", errcode=40035)
    assert box.requeue(0) == 0
    assert box.counts()["dead"] == 1


def test_items_lists_what_waits_before_a_week_of_sent_items(engine: Engine) -> None:
    """`outbox list` shows `limit` items: a long sent history must not hide the dead one."""
    box = engine.outbox()
    sent = box.enqueue([entry(u) for u in "abc"], source="am", group_key="g")
    (dead,) = box.enqueue([entry("d")], source="am", group_key="g")
    box.claim()
    for i in sent:
        box.mark_sent(i, [i])
    box.mark_dead(dead, error="DingTalk errcode 40035: bad", errcode=40035)
    assert [i.id for i in box.items(limit=2)][0] == dead
    assert [i.id for i in box.items()] == [dead, *sent]  # then by id, as before


def test_a_file_from_before_superseded_is_rebuilt_with_its_rows_ids_and_sequence(
    tmp_path: Path,
) -> None:
    """SQLite can't alter a CHECK: the table is rebuilt in one transaction, nothing lost."""
    import sqlite3

    from receiver.delivery.outbox_schema import COLUMNS, OUTBOX_TABLE, SCHEMA

    old = sqlite3.connect(tmp_path / "outbox.sqlite3")
    first_states = "'queued', 'sending', 'sent', 'retry', 'dead'"
    old.executescript(OUTBOX_TABLE.format(states=first_states) + ";" + SCHEMA)
    for name in ("owner", "due_since", "hold_reason", "followup_at", "send_result"):
        old.execute(f"ALTER TABLE outbox ADD COLUMN {name} {COLUMNS[name]}")
    for i, state in enumerate(("sent", "queued", "queued", "dead"), start=1):
        old.execute(
            "INSERT INTO outbox (id, created_at, updated_at, state, source, receiver, group_key,"
            " msg, userids, departments, next_attempt_at, due_since) VALUES"
            " (?, 1, 1, ?, 'am', 'ops', 'g', '{}', 'a', '', 1, 1)",
            (i * 10, state),
        )
        old.execute("INSERT INTO attempts (item_id, at, outcome) VALUES (?, 1, ?)", (i * 10, state))
    old.execute("DELETE FROM outbox WHERE id=40")  # the sequence is ahead of the last row
    old.commit()
    with pytest.raises(sqlite3.IntegrityError):  # the old file refuses the new state
        old.execute("UPDATE outbox SET state='superseded' WHERE id=20")
    old.close()

    box = Outbox(str(tmp_path))
    assert [(i.id, i.state) for i in box.items()] == [(20, "queued"), (30, "queued"), (10, "sent")]
    assert [h["outcome"] for h in box.history(20)] == ["queued"]
    # The two queued items are one group to one person: the claim supersedes the older.
    assert [i.id for i in box.claim()] == [30]
    assert box.get(20).state == "superseded" and box.get(20).superseded_by == 30  # type: ignore[union-attr]
    (new,) = box.enqueue([entry("b")], source="am", group_key="h")
    assert new == 41  # AUTOINCREMENT: an id once used is never handed out again
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"outbox_due", "outbox_group"} <= names
    Outbox(str(tmp_path))  # opening it again changes nothing
    assert box.counts()["superseded"] == 1


def test_superseded_items_are_purged_with_the_sent_ones(tmp_path: Path) -> None:
    box = Outbox(str(tmp_path))
    old, new = (box.enqueue([entry("a")], source="am", group_key="g")[0] for _ in range(2))
    assert [i.id for i in box.claim()] == [new]
    box.mark_sent(new, [1])
    assert box.purge_sent(3600) == 0
    assert box.purge_sent(0) == 2 and box.get(old) is None and box.history(old) == []


def test_an_accepted_webhook_becomes_items_once(engine: Engine) -> None:
    box = engine.outbox()
    p = box.accept(b'{"x": 1}', source="alertmanager", receiver=None, group_key="g")
    assert [q.id for q in box.pending()] == [p.id] and box.pending()[0].body == b'{"x": 1}'
    ids = box.expand(p, [entry("a"), entry("b")])
    assert ids is not None and len(ids) == 2
    assert box.expand(p, [entry("a")]) is None  # a second planner's work is discarded
    assert box.pending() == [] and [i.notification_id for i in box.items()] == [p.id, p.id]


def test_several_webhooks_become_items_in_one_transaction(engine: Engine) -> None:
    box = engine.outbox()
    a, b, c = (box.accept(b"{}", source="alertmanager", receiver=None, group_key=g) for g in "abc")
    assert box.expand(b, [entry("x")]) is not None  # another planner took b first

    def fail(db: object, ids: list[int]) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):  # one transaction: c's failure takes a's items back too
        box.expand_many([(a, [entry("a")], None), (c, [entry("c")], fail)])
    assert [p.id for p in box.pending()] == [a.id, c.id] and len(box.items()) == 1
    seen: list[list[int]] = []
    done = box.expand_many([(a, [entry("a"), entry("b")], None), (b, [entry("y")], None),
                            (c, [entry("c")], lambda db, ids: seen.append(ids))])  # fmt: skip
    assert done[1] is None and seen == [done[2]] and len(done[0] or []) == 2
    assert [i.notification_id for i in box.items()] == [b.id, a.id, a.id, c.id]
    assert box.pending() == []


def test_find_by_receiver_and_userid(engine: Engine) -> None:
    box = engine.outbox()
    users = (("al",), ("al", "bo"), ("alx",))
    al, al_bo, alx = (box.enqueue([entry(*u)], source="am", group_key="g")[0] for u in users)
    assert [i.id for i in box.find(userid="al")] == [al_bo, al]  # whole userids, not "alx"
    assert [i.id for i in box.find(receiver="ops", userid="bo")] == [al_bo]
    assert box.find(receiver="db") == []
    assert [i.id for i in box.find(state="queued")] == [alx, al_bo, al]


def test_stats_count_by_state_and_the_oldest_undelivered(engine: Engine) -> None:
    """What /metrics and /readyz read, whichever replica answers."""
    box = engine.outbox()
    assert box.stats() == ({s: 0 for s in ("pending", *STATES)}, None)
    p = box.accept(b"{}", source="alertmanager", receiver=None, group_key="g")
    (item,) = box.enqueue([entry("a")], source="am", group_key="h")
    counts, oldest = box.stats()
    assert counts["pending"] == 1 and counts["queued"] == 1
    assert oldest == min(p.received_at, box.get(item).created_at)  # type: ignore[union-attr]


def test_a_claim_reads_past_a_page_of_waiting_items(engine: Engine) -> None:
    """The claim reads the backlog a page at a time (50 rows): what may go on a later page
    goes, and a group's older items are superseded as soon as the scan meets the group."""
    box = engine.outbox()
    (first,) = box.enqueue([entry("a")], source="am", group_key="g")
    assert [i.id for i in box.claim(owner="o")] == [first]  # being sent: later ones to a wait
    waiting = [box.enqueue([entry("a")], source="am", group_key="g")[0] for _ in range(59)]
    (other,) = box.enqueue([entry("b")], source="am", group_key="h")
    assert [i.id for i in box.claim(owner="o")] == [other]
    assert box.counts()["superseded"] == 58
    assert {i.superseded_by for i in box.items("superseded")} == {waiting[-1]}
    assert box.waiting_behind() == {waiting[-1]: first}
