"""The `escalation_policies:` section of routing.yaml, read strictly. Pure.

    escalation_policies:
      db-pager:
        until: ack          # ack (default) | read
        steps:              # step 0 is the receiver's own recipients
          - after: 5m       # since the previous step; Alertmanager durations
            notify: {schedules: [db-secondary], users: [carol], departments: [12345]}
        repeat: 0           # run the steps again this many more times

A receiver names its policy with `escalation:`; the loader checks that the policy,
and each user and schedule a step names, exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from yaml.nodes import Node

from receiver.routing.yamlnodes import Reader, construct

POLICY_KEYS = ("until", "steps", "repeat")
STEP_KEYS = ("after", "notify")
NOTIFY_KEYS = ("users", "schedules", "departments")
UNTIL = ("ack", "read")

# Prometheus' model.ParseDuration, which Alertmanager's config uses: 1h30m, 90s, 500ms, 1w.
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNIT_S = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)

Refs = list[tuple[str, Node]]


def parse_am_duration(text: str) -> float:
    """An Alertmanager duration (`30s`, `5m`, `1h30m`, `0`) in seconds; ValueError otherwise."""
    if text == "0":
        return 0.0
    m = _DURATION.match(text)
    if not text or m is None or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration (like 30s, 5m, 1h30m)")
    return sum(int(g) * unit for g, unit in zip(m.groups(), _UNIT_S, strict=True) if g)


def format_duration(seconds: float) -> str:
    """Seconds as Alertmanager writes a duration: 5m, 1h30m, 45s."""
    s = int(round(seconds))
    if s <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out


@dataclass(frozen=True)
class Step:
    """One escalation step: who gets the group `after` seconds after the previous step."""

    after: float
    users: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()
    departments: tuple[int, ...] = ()


@dataclass(frozen=True)
class Policy:
    name: str
    steps: tuple[Step, ...]
    until: str = "ack"
    repeat: int = 0

    def step_count(self) -> int:
        """How many steps run in all, the repeats included (step 0 not counted)."""
        return len(self.steps) * (self.repeat + 1)

    def step(self, n: int) -> Step:
        """The n-th escalation step (1-based), the repeats unrolled."""
        return self.steps[(n - 1) % len(self.steps)]


def read_policies(rd: Reader, node: Node | None) -> tuple[dict[str, Policy], Refs, Refs]:
    """The policies, and the users and schedules they name (checked by the loader)."""
    out: dict[str, Policy] = {}
    users: Refs = []
    schedules: Refs = []
    for name, _, body in rd.pairs(node, "escalation_policies") if node is not None else []:
        what = f"escalation policy {name!r}"
        keys = rd.mapping(body, what, POLICY_KEYS, ("steps",))
        if keys is None or "steps" not in keys:
            continue
        until = "ack"
        if "until" in keys:
            until = rd.text(keys["until"], f"{what} until") or "ack"
            if until not in UNTIL:
                rd.error(keys["until"], f"{what}: until must be one of {', '.join(UNTIL)}")
        repeat = 0
        if "repeat" in keys:
            value = construct(keys["repeat"])
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                rd.error(keys["repeat"], f"{what}: repeat must be a whole number, 0 or more")
            else:
                repeat = value
        steps = []
        items = rd.seq(keys["steps"], f"{what} steps")
        if not items and isinstance(keys["steps"], Node):
            rd.error(keys["steps"], f"{what} needs at least one step")
        for i, item in enumerate(items, start=1):
            step = _step(rd, item, f"{what} step {i}", users, schedules)
            if step is not None:
                steps.append(step)
        if steps and len(steps) == len(items):
            out[name] = Policy(name=name, steps=tuple(steps), until=until, repeat=repeat)
    return out, users, schedules


def _step(rd: Reader, node: Node, what: str, users: Refs, schedules: Refs) -> Step | None:
    keys = rd.mapping(node, what, STEP_KEYS, STEP_KEYS)
    if keys is None or len(keys) != 2:
        return None
    text = rd.text(keys["after"], f"{what} after")
    after = None
    if text is not None:
        try:
            after = parse_am_duration(text)
        except ValueError as e:
            rd.error(keys["after"], f"{what} after: {e}")
    notify = rd.mapping(keys["notify"], f"{what} notify", NOTIFY_KEYS)
    if notify is None:
        return None
    who = rd.texts(notify["users"], "users") if "users" in notify else []
    rotas = rd.texts(notify["schedules"], "schedules") if "schedules" in notify else []
    depts = [
        rd.integer(d, "a department id")
        for d in (rd.seq(notify["departments"], "departments") if "departments" in notify else [])
    ]
    users += who
    schedules += rotas
    if not who and not rotas and not any(d is not None for d in depts):
        rd.error(keys["notify"], f"{what} notifies no one: give users, schedules or departments")
        return None
    if after is None:
        return None
    return Step(
        after=after,
        users=tuple(dict.fromkeys(u for u, _ in who)),
        schedules=tuple(dict.fromkeys(s for s, _ in rotas)),
        departments=tuple(dict.fromkeys(d for d in depts if d is not None)),
    )
