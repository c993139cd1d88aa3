"""Why an alert reaches whom: the answers of `routes test` and `routes diff`. Pure.

The CLI prints them and the web console shows them; both call these functions,
so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.routing.matchers import MatcherError, format_matchers, parse_matcher
from receiver.routing.table import Route, RoutingTable


@dataclass(frozen=True)
class MatchedRoute:
    """One route the alert matched, in tree order, and whether it notifies at `now`."""

    receiver: str
    path: tuple[str, ...]  # each node's matchers from the root down: "default-route", "{a="b"}"
    line: int
    notifies: bool
    why: str = ""  # for a route that does not notify: the interval that stops it


@dataclass(frozen=True)
class ReceiverAnswer:
    name: str
    userids: tuple[str, ...]
    departments: tuple[int, ...]
    on_call: tuple[tuple[str, str], ...] = ()  # (schedule, who is on call)


@dataclass(frozen=True)
class RouteAnswer:
    labels: dict[str, str]
    at: datetime
    receivers: tuple[str, ...]
    userids: tuple[str, ...]
    departments: tuple[int, ...]
    routes: tuple[MatchedRoute, ...] = ()
    per_receiver: tuple[ReceiverAnswer, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """What `routes test --json` prints: the same facts as its text.

        `receivers`, `userids` and `departments` are the contract (DESIGN.md); `routes`
        adds each matched route with its path and whether it notifies (a matched but
        muted route says why), and `recipients` whom each receiver reaches.
        """
        return {
            "receivers": list(self.receivers),
            "userids": list(self.userids),
            "departments": list(self.departments),
            "at": self.at.isoformat(),
            "routes": [
                {"receiver": r.receiver, "path": list(r.path), "line": r.line,
                 "notifies": r.notifies, "why": r.why}
                for r in self.routes
            ],
            "recipients": [
                {"receiver": p.name, "userids": list(p.userids),
                 "departments": list(p.departments), "on_call": dict(p.on_call)}
                for p in self.per_receiver
            ],
        }  # fmt: skip


def parse_labels(pairs: Iterable[str]) -> dict[str, str]:
    """LABEL=VALUE pairs, with matcher syntax for the value (as amtool reads them).

    Raises ValueError naming the pair that is not one.
    """
    labels: dict[str, str] = {}
    for pair in pairs:
        try:
            m = parse_matcher(pair)
        except MatcherError as e:
            raise ValueError(str(e)) from None
        if m.op != "=":
            raise ValueError(f"{pair!r}: use LABEL=VALUE")
        labels[m.name] = m.value
    return labels


def _paths(root: Route) -> dict[int, tuple[Route, ...]]:
    """Each route (by id) -> the routes from the root down to it."""
    out: dict[int, tuple[Route, ...]] = {}

    def walk(r: Route, above: tuple[Route, ...]) -> None:
        here = (*above, r)
        out[id(r)] = here
        for child in r.routes:
            walk(child, here)

    walk(root, ())
    return out


def why_silent(table: RoutingTable, route: Route, now: datetime) -> str:
    """Why a matched route does not notify at `now` ("" when it does)."""
    if route.active_time_intervals and not table.in_interval(route.active_time_intervals, now):
        return f"outside active_time_intervals {', '.join(route.active_time_intervals)}"
    muted = [n for n in route.mute_time_intervals if table.in_interval([n], now)]
    return f"muted by mute_time_intervals {', '.join(muted)}" if muted else ""


def explain(table: RoutingTable, labels: Mapping[str, str], now: datetime) -> RouteAnswer:
    """Which routes an alert with `labels` matches at `now`, and whom it reaches."""
    paths = _paths(table.route)
    matched = []
    for r in table.routes(labels):
        names = tuple(
            "default-route" if i == 0 else format_matchers(node.matchers)
            for i, node in enumerate(paths.get(id(r), (r,)))
        )
        why = why_silent(table, r, now)
        matched.append(MatchedRoute(r.receiver, names, r.line, not why, why))
    receivers = table.match(labels, now)
    rc = table.recipients_of(receivers, now)
    per = []
    for name in receivers:
        one = table.recipients(name, now)
        on_call = tuple((s, table.on_call(s, now)) for s in table.receivers[name].schedules)
        per.append(ReceiverAnswer(name, one.userids, one.departments, on_call))
    return RouteAnswer(
        dict(labels), now, tuple(receivers), rc.userids, rc.departments, tuple(matched), tuple(per)
    )


@dataclass(frozen=True)
class Change:
    """One alert whose receivers or people differ between two routing tables."""

    source: str  # where the alert came from: a payload file's name
    labels: dict[str, str]
    before: tuple[str, ...]
    after: tuple[str, ...]
    added: tuple[str, ...] = field(default=())  # userids paged only after
    removed: tuple[str, ...] = field(default=())  # userids paged only before


def diff(
    before: RoutingTable,
    after: RoutingTable,
    alerts: Iterable[tuple[str, Mapping[str, str]]],
    now: datetime,
) -> tuple[list[Change], int]:
    """The alerts (source, labels) whose pager changes from `before` to `after`, and the total."""
    changes: list[Change] = []
    total = 0
    for source, labels in alerts:
        total += 1
        a, b = tuple(before.match(labels, now)), tuple(after.match(labels, now))
        ua = before.recipients_of(a, now).userids
        ub = after.recipients_of(b, now).userids
        if a == b and ua == ub:
            continue
        added = tuple(u for u in ub if u not in ua)
        removed = tuple(u for u in ua if u not in ub)
        changes.append(Change(source, dict(labels), a, b, added, removed))
    return changes, total
