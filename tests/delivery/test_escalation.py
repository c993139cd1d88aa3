"""The escalation state machine, as a table: an escalation, what is known, the decision."""

from __future__ import annotations

import pytest

from receiver.delivery.escalation import (
    Escalation,
    Fire,
    Stop,
    Wait,
    decide,
    escalated_note,
    first_due,
    needs_read_check,
    next_due,
)
from receiver.messages.filters import WORDS
from receiver.routing.escalation import Policy, Step

T0 = 1_000_000.0  # any instant: nothing here reads a clock
TWO = Policy("p", (Step(300.0, users=("b",)), Step(600.0, users=("c",))))
READ = Policy("r", TWO.steps, until="read")
AGAIN = Policy("a", TWO.steps, repeat=1)


def esc(step: int = 0, due: float | None = T0 + 300, ends_at: float | None = None) -> Escalation:
    return Escalation(1, "db", "{}:{}", "p", "active", T0, step, T0, due, 7, ends_at)


@pytest.mark.parametrize(
    ("e", "policy", "now", "known", "want"),
    [
        (esc(), TWO, T0 + 299, {}, Wait(T0 + 300)),
        (esc(), TWO, T0 + 300, {}, Fire(1, exhausted=False)),
        (esc(1, T0 + 900), TWO, T0 + 900, {}, Fire(2, exhausted=True)),
        (esc(2, None), TWO, T0 + 9999, {}, Stop("exhausted")),
        (esc(), TWO, T0 + 300, {"acked": True}, Stop("acked")),
        (esc(), TWO, T0 + 10, {"acked": True}, Stop("acked")),  # at once, not when due
        (esc(), TWO, T0 + 300, {"resolved": True}, Stop("resolved")),
        (esc(ends_at=T0 + 100), TWO, T0 + 300, {}, Stop("resolved")),  # every endsAt passed
        (esc(ends_at=T0 + 400), TWO, T0 + 300, {}, Fire(1, exhausted=False)),
        (esc(), TWO, T0 + 300, {"read": True}, Fire(1, exhausted=False)),  # until: ack
        (esc(), READ, T0 + 300, {"read": True}, Stop("read")),
        (esc(), READ, T0 + 200, {"read": True}, Wait(T0 + 300)),  # read counts when due
        (esc(2, T0 + 2000), AGAIN, T0 + 2000, {}, Fire(3, exhausted=False)),
        (esc(3, T0 + 2600), AGAIN, T0 + 2600, {}, Fire(4, exhausted=True)),
        (esc(), None, T0 + 300, {}, Stop("removed")),
        (esc(), TWO, T0 + 300, {"acked": True, "resolved": True}, Stop("acked")),
    ],
)
def test_decide(
    e: Escalation, policy: Policy | None, now: float, known: dict[str, bool], want: object
) -> None:
    assert decide(e, policy, now, **known) == want


def test_due_times_count_from_the_previous_step() -> None:
    assert first_due(TWO, T0) == T0 + 300
    assert next_due(TWO, 1, T0 + 310) == T0 + 310 + 600  # the step was sent late: from then
    assert next_due(TWO, 2, T0) is None
    assert next_due(AGAIN, 2, T0) == T0 + 300  # the repeat starts with step 1 again
    assert AGAIN.step(3) == TWO.steps[0] and AGAIN.step_count() == 4


def test_read_is_checked_only_for_a_due_step_of_an_until_read_policy() -> None:
    assert needs_read_check(esc(), READ, T0 + 300)
    assert not needs_read_check(esc(), READ, T0 + 299)
    assert not needs_read_check(esc(), TWO, T0 + 300)


def test_the_note_says_how_long_and_from_whom() -> None:
    assert escalated_note(WORDS["zh"], 300, ["张三"]) == "未确认 5m · 张三"
    assert escalated_note(WORDS["zh"], 45, []) == "未确认 45s · -"
    assert escalated_note(WORDS["en"], 5400, ["a", "b"]) == "Unacknowledged 1h30m · a、b"
    assert escalated_note(WORDS["zh"], 61, list("abcde")) == "未确认 1m · a、b、c +2"
