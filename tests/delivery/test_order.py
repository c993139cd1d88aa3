"""Order per (receiver, alert group, person), and which waiting item replaces which. Pure."""

from __future__ import annotations

import pytest

from receiver.delivery.order import Row, plan

NOW = 1000.0


def row(i: int, *people: str, group: str = "g", state: str = "queued", status: str = "firing",
        due: float = 0.0, held: str | None = None, receiver: str = "ops") -> Row:  # fmt: skip
    return Row(i, state, due, NOW + 60 if state == "sending" else None, held, receiver, group,
               status, frozenset(people))  # fmt: skip


def never(receiver: str, group: str) -> bool:
    return False


def always(receiver: str, group: str) -> bool:
    return True


@pytest.mark.parametrize(
    ("rows", "fired", "chosen", "superseded", "behind"),
    [
        # a newer state of the group for the same person replaces the older one
        ([row(1, "a"), row(2, "a")], never, [2], {1: 2}, {}),
        # the newest of three replaces both
        ([row(1, "a"), row(2, "a"), row(3, "a")], never, [3], {1: 3, 2: 3}, {}),
        # one in retry (its own failure) is replaced too: the newest state goes instead
        ([row(1, "a", state="retry", due=NOW + 300), row(2, "a")], never, [2], {1: 2}, {}),
        # not for fewer people: the older one goes first, the newer waits behind it
        ([row(1, "a", "b"), row(2, "a")], never, [1], {}, {2: 1}),
        # other groups, other receivers and other people never wait
        ([row(1, "a", state="retry", due=NOW + 300), row(2, "a", group="h"),
          row(3, "a", receiver="db"), row(4, "b")], never, [2, 3, 4], {}, {}),
        # one being sent holds its group back, and is never replaced
        ([row(1, "a", state="sending"), row(2, "a")], never, [], {}, {2: 1}),
        # a held item (a client-side limit) holds nobody back, and is not replaced
        ([row(1, "a", held="daily limit", due=NOW + 9999), row(2, "a")], never, [2], {}, {}),
        # resolved after a firing that was never delivered: both go, the firing first
        ([row(1, "a"), row(2, "a", status="resolved")], never, [1], {}, {2: 1}),
        # ... and after one that was: the resolved one replaces the waiting firing
        ([row(1, "a"), row(2, "a", status="resolved")], always, [2], {1: 2}, {}),
        # a group robot's copy (no recipients) is never replaced, and never waits
        ([row(1), row(2, "a"), row(3)], never, [1, 2, 3], {}, {}),
        # firing, firing, resolved, none delivered: the newer firing goes, then resolved
        ([row(1, "a"), row(2, "a"), row(3, "a", status="resolved")], never, [2], {1: 2}, {3: 2}),
    ],
)  # fmt: skip
def test_order_and_supersession(rows, fired, chosen, superseded, behind) -> None:  # type: ignore[no-untyped-def]
    p = plan(rows, NOW, 10, fired)
    assert (p.chosen, p.superseded, p.behind) == (chosen, superseded, behind)


def test_the_limit_caps_a_claim_but_not_what_is_explained() -> None:
    p = plan([row(1, "a"), row(2, "b"), row(3, "c", "e"), row(4, "c", "d")], NOW, 2, never)
    assert p.chosen == [1, 2] and p.behind == {4: 3}
