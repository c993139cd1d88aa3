"""The `route:` and `schedules:` sections of routing.yaml, read strictly. Pure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

from yaml.nodes import Node

from receiver.routing.matchers import LABEL_NAME, Matcher, MatcherError, parse_matchers, sort_key
from receiver.routing.schedule import Override, Schedule, parse_handoff, parse_rotation
from receiver.routing.table import Route
from receiver.routing.timeintervals import parse_location
from receiver.routing.yamlnodes import Reader, construct, line

ROUTE_KEYS: tuple[str, ...] = ("receiver", "matchers", "match", "match_re", "continue")
ROUTE_KEYS += ("routes", "mute_time_intervals", "active_time_intervals")
GROUPING = ("group_by", "group_wait", "group_interval", "repeat_interval")
NOT_ON_ROOT: tuple[str, ...] = ("matchers", "match", "match_re", "continue")
NOT_ON_ROOT += ("mute_time_intervals", "active_time_intervals")
SCHEDULE_KEYS = ("timezone", "rotation", "handoff", "start", "members", "overrides")

Refs = list[tuple[str, Node]]


def read_route(rd: Reader, node: Node, parent: str, *, root: bool = False) -> Route:
    what = "the root route" if root else "a route"
    keys = rd.mapping(node, what, ROUTE_KEYS + GROUPING, ("receiver",) if root else ())
    if keys is None:
        return Route(receiver=parent, line=line(node))
    for key in GROUPING:
        if key in keys:
            rd.error(
                keys[key], f"{key}: Alertmanager groups alerts before they get here; remove it"
            )
    for key in NOT_ON_ROOT if root else ():
        if key in keys:
            rd.error(keys[key], f"the root route cannot have {key}: it matches every alert")
    receiver = parent
    # A child's `receiver: ""` (or one left empty) inherits its parent's, as in Alertmanager.
    if "receiver" in keys and (root or construct(keys["receiver"]) not in (None, "")):
        receiver = rd.text(keys["receiver"], "receiver") or parent
    matchers = _matchers(rd, keys)
    intervals = {
        key: tuple(n for n, _ in rd.texts(keys[key], key)) if key in keys else ()
        for key in ("mute_time_intervals", "active_time_intervals")
    }
    cont = rd.boolean(keys["continue"], "continue") if "continue" in keys else False
    children = (
        tuple(
            read_route(rd, child, receiver) for child in rd.seq(keys.get("routes", node), "routes")
        )
        if "routes" in keys
        else ()
    )
    return Route(
        receiver=receiver,
        matchers=tuple(sorted(matchers, key=sort_key)),
        continue_=bool(cont),
        routes=children,
        mute_time_intervals=intervals["mute_time_intervals"],
        active_time_intervals=intervals["active_time_intervals"],
        line=line(keys["receiver"] if "receiver" in keys else node),
    )


def _matchers(rd: Reader, keys: dict[str, Node]) -> list[Matcher]:
    out: list[Matcher] = []
    for text, item in rd.texts(keys["matchers"], "matchers") if "matchers" in keys else []:
        try:
            out.extend(parse_matchers(text))
        except MatcherError as e:
            rd.error(item, str(e))
    for key, op in (("match", "="), ("match_re", "=~")):
        for name, k, v in rd.pairs(keys[key], key) if key in keys else []:
            value = rd.text(v, f"{key} {name}", empty=True)
            if not LABEL_NAME.match(name):
                rd.error(k, f"invalid label name {name!r} in {key}")
            elif value is not None:
                try:
                    out.append(Matcher.make(name, op, value))
                except MatcherError as e:
                    rd.error(v, str(e))
    return out


def read_schedules(rd: Reader, node: Node | None) -> tuple[dict[str, Schedule], Refs]:
    out: dict[str, Schedule] = {}
    people: Refs = []
    for name, _, body in rd.pairs(node, "schedules") if node is not None else []:
        what = f"schedule {name!r}"
        keys = rd.mapping(body, what, SCHEDULE_KEYS, ("timezone", "rotation", "start", "members"))
        if keys is None or not {"timezone", "rotation", "start", "members"} <= set(keys):
            continue
        tz = _zone(rd, keys["timezone"], what)
        start = rd.date(keys["start"], f"{what} start")
        members = rd.texts(keys["members"], f"{what} members")
        if not members:
            rd.error(keys["members"], f"{what} needs at least one member")
        people += members
        overrides = []
        for item in rd.seq(keys["overrides"], "overrides") if "overrides" in keys else []:
            o = _override(rd, item, tz, what) if tz else None
            if o is not None:
                overrides.append(o)
                people.append((o.user, item))
        rotation = _check(rd, keys["rotation"], parse_rotation, what)
        handoff = _check(rd, keys["handoff"], parse_handoff, what) if "handoff" in keys else "00:00"
        if tz is None or start is None or not members or rotation is None or handoff is None:
            continue
        try:
            out[name] = Schedule.build(
                name, tz, rotation, handoff, start, tuple(m for m, _ in members), tuple(overrides)
            )
        except ValueError as e:
            rd.error(keys.get("handoff", body), f"{what}: {e}")
    return out, people


def _check(rd: Reader, node: Node, parse: Callable[[str], object], what: str) -> str | None:
    """The text of `node` if `parse` accepts it; else the problem is reported."""
    text = rd.text(node, what)
    if text is None:
        return None
    try:
        parse(text)
    except ValueError as e:
        rd.error(node, f"{what}: {e}")
        return None
    return text


def _zone(rd: Reader, node: Node, what: str) -> tzinfo | None:
    try:
        return parse_location(construct(node))
    except ValueError as e:
        rd.error(node, f"{what}: {e}")
        return None


def _override(rd: Reader, node: Node, tz: tzinfo, what: str) -> Override | None:
    keys = rd.mapping(
        node, f"an override of {what}", ("user", "from", "to"), ("user", "from", "to")
    )
    if keys is None or len(keys) != 3:
        return None
    user = rd.text(keys["user"], "override user")
    start, end = _instant(rd, keys["from"], tz), _instant(rd, keys["to"], tz)
    if user is None or start is None or end is None:
        return None
    if start >= end:
        rd.error(node, f"{what}: an override must end after it starts")
        return None
    return Override(user, start, end)


def _instant(rd: Reader, node: Node, tz: tzinfo) -> datetime | None:
    raw = construct(node)
    try:
        value = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError:
        rd.error(node, f"{raw!r} is not a time; use 2026-12-24T09:00 (in the schedule's timezone)")
        return None
    return value if value.tzinfo else value.replace(tzinfo=tz)
