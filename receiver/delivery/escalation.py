"""The escalation state machine: what to do with one escalation at one instant. Pure.

    firing notification to a receiver with a policy ──► active (step 0 sent as always)
    active ──(a step is due, none of the stops below)──► step n sent ──► active …
       │                                                    └─(the last one)──► exhausted
       ├──(anyone notified acknowledged)──► acked
       ├──(until: read, and anyone notified has read it)──► read
       └──(a resolved notification, or every alert's endsAt passed)──► resolved

Step n is due `after` (its policy's) seconds after step n-1 was sent; step 0 is the
receiver's own send, when the webhook was received. The delivery process asks
`decide` once a step is due, with what it just learned (acks, DingTalk's read
receipts); the store records the outcome (receiver.delivery.escalation_store).
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.routing.escalation import Policy, format_duration

ACTIVE = "active"
STOPPED = ("acked", "read", "resolved", "exhausted", "removed")


@dataclass(frozen=True)
class Escalation:
    id: int
    receiver: str
    group_key: str
    policy: str
    state: str
    started_at: float
    step: int  # steps sent so far; 0: only the receiver's own send
    last_step_at: float
    due_at: float | None
    notification_id: int  # the group's latest notification: its current state
    ends_at: float | None = None  # the latest endsAt when every alert has one, else None


@dataclass(frozen=True)
class Fire:
    step: int  # the step to send now (1-based, repeats unrolled)
    exhausted: bool  # True when it is the last one


@dataclass(frozen=True)
class Stop:
    reason: str  # one of STOPPED


@dataclass(frozen=True)
class Wait:
    until: float


Decision = Fire | Stop | Wait


def first_due(policy: Policy, started_at: float) -> float:
    return started_at + policy.step(1).after


def next_due(policy: Policy, step: int, sent_at: float) -> float | None:
    """When the step after `step` is due, or None when `step` was the last."""
    if step >= policy.step_count():
        return None
    return sent_at + policy.step(step + 1).after


def needs_read_check(esc: Escalation, policy: Policy, now: float) -> bool:
    """Whether to ask DingTalk for read receipts before deciding: only for a step about to fire."""
    return policy.until == "read" and esc.state == ACTIVE and (esc.due_at or now + 1) <= now


def decide(
    esc: Escalation,
    policy: Policy | None,
    now: float,
    *,
    acked: bool = False,
    read: bool = False,
    resolved: bool = False,
) -> Decision:
    """What an active escalation does at `now`. The stops are checked before a step fires."""
    if policy is None:
        return Stop("removed")  # its receiver or policy left routing.yaml
    if acked:
        return Stop("acked")
    if resolved or (esc.ends_at is not None and esc.ends_at <= now):
        return Stop("resolved")
    if esc.step >= policy.step_count() or esc.due_at is None:
        return Stop("exhausted")
    if esc.due_at > now:
        return Wait(esc.due_at)
    if policy.until == "read" and read:
        return Stop("read")
    step = esc.step + 1
    return Fire(step, exhausted=step >= policy.step_count())


def escalated_note(words: dict[str, str], waited_s: float, names: list[str]) -> str:
    """`未确认 5m · 张三`: how long the group waited, and who did not take it."""
    if waited_s >= 60:
        waited_s -= waited_s % 60  # 5m, not 5m1s: the step was due at a whole duration
    shown = names[:3]
    who = "、".join(shown) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    return words["escalated"].format(after=format_duration(waited_s), who=who or "-")
