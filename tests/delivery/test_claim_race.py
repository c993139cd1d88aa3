"""A claim is planned in a read and taken in a short write (receiver.delivery.outbox_claim):
what changes in between must not break order per person nor lease an item twice."""

from __future__ import annotations

from receiver.delivery.pipeline import Entry
from tests.conftest import Engine

MSG = {"msgtype": "text", "text": {"content": "磁盘满了"}}


def entry(*userids: str) -> Entry:
    return Entry(receiver="ops", msg=MSG, userids=userids)


def dead_then_later(engine: Engine) -> tuple[int, int]:
    """A dead item to a and x, then a later one of its group to a (not a copy: it waits)."""
    box = engine.outbox()
    (first,) = box.enqueue([entry("a", "x")], source="alertmanager", group_key="g")
    box.claim()
    box.mark_dead(first, error="HTTP 400", errcode=None)
    (later,) = box.enqueue([entry("a")], source="alertmanager", group_key="g")
    return first, later


def test_a_requeue_between_plan_and_take_drops_the_plan(engine: Engine) -> None:
    first, later = dead_then_later(engine)
    box = engine.outbox()
    plan = box.plan_claim()
    assert plan is not None and plan.chosen == [later]
    box.requeue(first)  # the console, while the claim was planning
    assert box.take(plan) is None  # taking it would send `later` before `first`
    assert [i.id for i in box.claim()] == [first]
    assert box.waiting_behind() == {later: first}


def test_an_item_claimed_by_another_replica_in_between_is_not_taken_twice(engine: Engine) -> None:
    box, other = engine.outbox(), engine.outbox()
    (item,) = box.enqueue([entry("a")], source="alertmanager", group_key="g")
    plan = box.plan_claim()
    assert plan is not None and plan.chosen == [item]
    assert [i.id for i in other.claim(owner="replica-2")] == [item]
    assert box.take(plan, owner="replica-1") is None
    assert box.claim(owner="replica-1") == []
    assert box.get(item).owner == "replica-2"  # type: ignore[union-attr]


def test_an_item_queued_after_the_plan_does_not_spoil_it(engine: Engine) -> None:
    box = engine.outbox()
    (item,) = box.enqueue([entry("a")], source="alertmanager", group_key="g")
    plan = box.plan_claim()
    box.enqueue([entry("a")], source="alertmanager", group_key="g")  # newer: it goes after
    taken = box.take(plan)  # type: ignore[arg-type]
    assert taken is not None and [i.id for i in taken] == [item]


def test_a_claim_planned_inside_the_lock_keeps_the_order(engine: Engine) -> None:
    first, later = dead_then_later(engine)
    box = engine.outbox()
    box.requeue(first)
    box.CLAIM_TRIES = 0  # no plan made in a read: the fallback, planned holding the lock
    assert [i.id for i in box.claim()] == [first]
    box.mark_sent(first, [1])
    assert [i.id for i in box.claim()] == [later]
