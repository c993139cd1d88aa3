"""The routing table: Alertmanager's route tree over DingTalk receivers. Pure.

The tree is walked as Alertmanager's `dispatch/route.go` does: a node matches
when all its matchers do; its children are tried in order and the first that
matches stops the walk unless it has `continue: true`; a node none of whose
children matched is itself the result. Mute and active time intervals belong to
one route each (they are not inherited) and only decide whether a matched route
notifies at `now`; they never change which routes match.

The one loader of routing.yaml is `receiver.routing.loader.load`, exported by the
package as `load_routing`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from receiver.errors import ConfigProblem
from receiver.routing.escalation import Policy
from receiver.routing.matchers import Matcher, format_matchers
from receiver.routing.robots import Robot
from receiver.routing.schedule import Schedule
from receiver.routing.timeintervals import TimeInterval


class Directory(Protocol):
    """The synced DingTalk directory: userids whose `field` (mobile, email, name) is `value`."""

    def find(self, field: str, value: str) -> list[str]: ...

    def synced_at(self) -> float | None: ...

    def describe(self, userids: Iterable[str]) -> str: ...


@dataclass(frozen=True)
class Lookup:
    """An alias resolved through the directory, as `{mobile: "138…"}`."""

    field: str
    value: str


@dataclass(frozen=True)
class Route:
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    routes: tuple[Route, ...] = ()
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    line: int = field(default=0, compare=False)
    # For many children: the label most of them test with `=`, and for each value the
    # children that can match it, plus those that don't test that label at all.
    _index: tuple[str, dict[str, tuple[int, ...]], tuple[int, ...]] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if len(self.routes) >= INDEX_MIN_CHILDREN:
            object.__setattr__(self, "_index", _index_children(self.routes))

    def candidates(self, labels: Mapping[str, str]) -> Sequence[Route]:
        """The children that can match, in order: skipping the rest changes nothing."""
        if self._index is None:
            return self.routes
        name, by_value, always = self._index
        picked = by_value.get(labels.get(name, ""), ())
        return [self.routes[i] for i in (sorted(picked + always) if picked else always)]

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        if not all(m.matches(labels) for m in self.matchers):
            return []
        found: list[Route] = []
        for child in self.candidates(labels):
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [self]

    def walk(self) -> Iterable[Route]:
        yield self
        for child in self.routes:
            yield from child.walk()


INDEX_MIN_CHILDREN = 8


def _index_children(
    routes: tuple[Route, ...],
) -> tuple[str, dict[str, tuple[int, ...]], tuple[int, ...]] | None:
    """Index children by the label most of them match with `=` (a big flat tree's shape)."""
    names = Counter(n for r in routes for n in {m.name for m in r.matchers if m.op == "="})
    if not names:
        return None
    name, count = names.most_common(1)[0]
    if count * 2 < len(routes):
        return None
    by_value: dict[str, list[int]] = {}
    always: list[int] = []
    for i, r in enumerate(routes):
        value = next((m.value for m in r.matchers if m.op == "=" and m.name == name), None)
        (always if value is None else by_value.setdefault(value, [])).append(i)
    return name, {v: tuple(ix) for v, ix in by_value.items()}, tuple(always)


@dataclass(frozen=True)
class Receiver:
    name: str
    users: tuple[str, ...] = ()
    departments: tuple[int, ...] = ()
    schedules: tuple[str, ...] = ()
    template: str | None = None
    msgtype: str = "markdown"
    send_resolved: bool = True
    robots: tuple[str, ...] = ()  # group robots that get a copy, @mentioning who was paged
    template_line: int = field(default=0, compare=False)
    escalation: str | None = None  # the name of its escalation policy
    notify_ack: bool = False  # tell the others who acknowledged


@dataclass(frozen=True)
class Recipients:
    userids: tuple[str, ...] = ()
    departments: tuple[int, ...] = ()


@dataclass(frozen=True)
class RoutingTable:
    route: Route
    receivers: dict[str, Receiver]
    users: dict[str, str | Lookup] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    time_intervals: dict[str, tuple[TimeInterval, ...]] = field(default_factory=dict)
    directory: Directory | None = None
    path: str = "routing.yaml"
    warnings: tuple[ConfigProblem, ...] = ()
    robots: dict[str, Robot] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)

    def routes(self, labels: Mapping[str, str]) -> list[Route]:
        """The matching routes in tree order, as `amtool config routes test` finds them."""
        return self.route.match(labels)

    def in_interval(self, names: Iterable[str], now: datetime) -> bool:
        return any(ti.contains(now) for n in names for ti in self.time_intervals[n])

    def notifies(self, route: Route, now: datetime | None) -> bool:
        """False while the route is muted or outside its active intervals at `now`."""
        if now is None:
            return True
        if route.active_time_intervals and not self.in_interval(route.active_time_intervals, now):
            return False
        return not self.in_interval(route.mute_time_intervals, now)

    def match(self, labels: Mapping[str, str], now: datetime | None = None) -> list[str]:
        """Receiver names for these labels, in tree order, without repeats.

        With `now`, routes muted or inactive at that instant contribute nothing;
        with None, time intervals are ignored (as amtool does).
        """
        names = [r.receiver for r in self.routes(labels) if self.notifies(r, now)]
        return list(dict.fromkeys(names))

    def resolve(self, who: str) -> list[str]:
        """An alias, or a raw userid, as userids. A directory alias may give several or none."""
        target = self.users.get(who, who)
        if isinstance(target, str):
            return [target]
        if self.directory is None:
            return []
        return self.directory.find(target.field, target.value)

    def on_call(self, schedule: str, now: datetime | None = None) -> str:
        return self.schedules[schedule].on_call(now or datetime.now(UTC))

    def recipients(self, receiver: str, now: datetime | None = None) -> Recipients:
        """Users and whoever is on call at `now` for the receiver's schedules, de-duplicated."""
        r = self.receivers[receiver]
        who = list(r.users) + [self.on_call(s, now) for s in r.schedules]
        userids = dict.fromkeys(u for w in who for u in self.resolve(w))
        return Recipients(userids=tuple(userids), departments=tuple(dict.fromkeys(r.departments)))

    def step_recipients(self, policy: str, n: int, now: datetime | None = None) -> Recipients:
        """Who escalation step `n` (1-based, repeats unrolled) of `policy` notifies at `now`."""
        step = self.policies[policy].step(n)
        who = list(step.users) + [self.on_call(s, now) for s in step.schedules]
        userids = dict.fromkeys(u for w in who for u in self.resolve(w))
        return Recipients(userids=tuple(userids), departments=step.departments)

    def recipients_of(self, receivers: Iterable[str], now: datetime | None = None) -> Recipients:
        """The union over several receivers, each person and department once."""
        users: dict[str, None] = {}
        depts: dict[int, None] = {}
        for name in receivers:
            rc = self.recipients(name, now)
            users.update(dict.fromkeys(rc.userids))
            depts.update(dict.fromkeys(rc.departments))
        return Recipients(tuple(users), tuple(depts))


def draw_tree(route: Route) -> list[str]:
    """The tree as `amtool config routes show` draws it."""
    lines = ["Routing tree:"]

    def node(r: Route, prefix: str, last: bool, root: bool) -> None:
        label = "default-route" if root else format_matchers(r.matchers)
        extra = "  continue: true" if r.continue_ else ""
        for key in ("mute_time_intervals", "active_time_intervals"):
            names: tuple[str, ...] = getattr(r, key)
            extra += f"  {key}: {','.join(names)}" if names else ""
        lines.append(f"{prefix}{'└── ' if last else '├── '}{label}{extra}  receiver: {r.receiver}")
        inner = prefix + ("    " if last else "│   ")
        for i, child in enumerate(r.routes):
            node(child, inner, i == len(r.routes) - 1, False)

    node(route, "", True, True)
    return lines


def tree_json(route: Route, root: bool = True) -> dict[str, Any]:
    """The tree `draw_tree` draws, as data: `routes test --tree --json`."""
    return {
        "matchers": "default-route" if root else format_matchers(route.matchers),
        "receiver": route.receiver,
        "continue": route.continue_,
        "mute_time_intervals": list(route.mute_time_intervals),
        "active_time_intervals": list(route.active_time_intervals),
        "line": route.line,
        "routes": [tree_json(child, False) for child in route.routes],
    }
