"""The one loader of routing.yaml: strict, and every problem at once. Pure.

serve, check-config, routes test and reload all call `load`. Each section is
read on its own, then cross-references (receivers, schedules, intervals,
aliases) are checked, as Alertmanager's config package does. Problems are
`ConfigProblem(file, line, message)`; if there is any, `ConfigError` carries
them all. Warnings (aliases that need the synced directory, raw userids) stay
on the table and never fail a load.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node

from receiver.errors import ConfigError, ConfigProblem
from receiver.routing.escalation import read_policies
from receiver.routing.interpolate import interpolate
from receiver.routing.robots import check_robot_refs, read_robots
from receiver.routing.sections import read_route, read_schedules
from receiver.routing.table import Directory, Lookup, Receiver, RoutingTable
from receiver.routing.timeintervals import FIELDS, TimeInterval, parse_location
from receiver.routing.yamlnodes import Reader, as_written, compose, line

TOP: tuple[str, ...] = ("users", "schedules", "time_intervals", "receivers", "route")
TOP += ("robots",)
TOP += ("escalation_policies",)
RECEIVER_KEYS: tuple[str, ...] = (
    "name",
    "users",
    "departments",
    "schedules",
    "template",
    "msgtype",
)
RECEIVER_KEYS += ("send_resolved",)
RECEIVER_KEYS += ("robots",)
RECEIVER_KEYS += ("escalation", "notify_ack")
MSGTYPES = ("markdown", "text", "action_card", "oa")
LOOKUP_FIELDS = ("mobile", "email", "name")


def load(
    path: str,
    directory: Directory | None = None,
    *,
    strict_lookups: bool = False,
    env: Mapping[str, str] | None = None,
) -> RoutingTable:
    """Load and validate routing.yaml; raise ConfigError naming FILE:LINE for every problem.

    `${VAR}` in any string is taken from `env` (default: the process environment).

    `strict_lookups` (the CLI) makes a directory alias that finds no one, or a name
    that finds several people, an error; serve only warns, because the directory
    changes without the file changing and one leaver must not stop all paging.
    """
    rd = Reader(path)
    root = compose(path, rd)
    if root is None:
        if not rd.problems:
            rd.error(1, "the file is empty")
        raise ConfigError(rd.problems)
    interpolate(rd, root, os.environ if env is None else env)
    top = rd.mapping(root, "the top level", TOP, required=("receivers", "route"))
    if top is None:
        raise ConfigError(rd.problems)
    users = read_users(rd, top["users"]) if "users" in top else {}
    intervals = read_intervals(rd, top["time_intervals"]) if "time_intervals" in top else {}
    schedules, members = read_schedules(rd, top.get("schedules"))
    robots, robot_names = read_robots(rd, top["robots"]) if "robots" in top else ({}, set())
    receivers, refs = read_receivers(rd, top.get("receivers"))
    check_robot_refs(rd, refs["robots"], robot_names)
    policies, step_users, step_schedules = read_policies(rd, top.get("escalation_policies"))
    members += step_users
    refs["schedules"] += step_schedules
    for name, node in refs["escalation"]:
        if name not in policies:
            rd.error(node, f"undefined escalation policy {name!r}")
    route = read_route(rd, top["route"], "", root=True) if "route" in top else None

    for name, node in refs["schedules"]:
        if name not in schedules:
            rd.error(node, f"undefined schedule {name!r}")
    for who, node in refs["users"] + members:
        if who not in users:
            rd.warn(node, f"{who!r} is not an alias under users:; it is used as a raw userid")
    if route is not None:
        for r in route.walk():
            if r.receiver and r.receiver not in receivers:
                rd.error(r.line, f"undefined receiver {r.receiver!r}")
            for n in r.mute_time_intervals + r.active_time_intervals:
                if n not in intervals:
                    rd.error(r.line, f"undefined time interval {n!r}")
    check_lookups(rd, users, directory, strict_lookups)
    if rd.problems or route is None:
        raise ConfigError(sorted(rd.problems, key=lambda p: p.line))
    return RoutingTable(
        route=route,
        receivers=receivers,
        users={k: v for k, (v, _) in users.items()},
        schedules=schedules,
        time_intervals=intervals,
        directory=directory,
        path=path,
        robots=robots,
        warnings=tuple(sorted(rd.warnings, key=lambda p: p.line)),
        policies=policies,
    )


def check_lookups(
    rd: Reader,
    users: dict[str, tuple[str | Lookup, Node]],
    directory: Directory | None,
    strict: bool,
) -> None:
    report = rd.error if strict else rd.warn
    synced = directory is not None and directory.synced_at() is not None
    for alias, (target, node) in users.items():
        if not isinstance(target, Lookup):
            continue
        if directory is None or not synced:
            rd.warn(
                node,
                f"alias {alias!r} needs the synced directory (run `dingtalk-receiver sync-users`);"
                " until then it reaches no one",
            )
            continue
        found = directory.find(target.field, target.value)
        if not found:
            report(
                node,
                f"alias {alias!r}: no one in the directory has {target.field} {target.value!r}",
            )
        elif len(found) > 1:
            report(
                node,
                f"alias {alias!r}: {len(found)} people have {target.field} {target.value!r}:"
                f" {directory.describe(found)}; use their userid or mobile instead",
            )


def read_users(rd: Reader, node: Node) -> dict[str, tuple[str | Lookup, Node]]:
    out: dict[str, tuple[str | Lookup, Node]] = {}
    for alias, _, value in rd.pairs(node, "users"):
        if not isinstance(value, MappingNode):
            userid = rd.text(value, f"alias {alias!r}")
            if userid is not None:
                out[alias] = (userid, value)
            continue
        keys = rd.mapping(value, f"alias {alias!r}", LOOKUP_FIELDS) or {}
        if len(keys) != 1:
            rd.error(value, f"alias {alias!r} needs exactly one of mobile, email or name")
            continue
        ((field, v),) = keys.items()
        text = rd.text(v, f"alias {alias!r} {field}")
        if text is not None:
            out[alias] = (Lookup(field, text), value)
    return out


def read_intervals(rd: Reader, node: Node) -> dict[str, tuple[TimeInterval, ...]]:
    out: dict[str, tuple[TimeInterval, ...]] = {}
    for item in rd.seq(node, "time_intervals"):
        keys = rd.mapping(item, "a time interval", ("name", "time_intervals"), ("name",))
        if keys is None or "name" not in keys:
            continue
        name = rd.text(keys["name"], "name")
        if name is None:
            continue
        if name in out:
            rd.error(keys["name"], f"duplicate time interval {name!r}")
        parsed = []
        for ti in rd.seq(keys.get("time_intervals", item), f"time interval {name!r}"):
            parsed.append(read_interval(rd, ti, name))
        out[name] = tuple(parsed)
    return out


def read_interval(rd: Reader, node: Node, name: str) -> TimeInterval:
    keys = rd.mapping(node, f"time interval {name!r}", (*FIELDS, "location")) or {}
    fields: dict[str, Any] = {}
    for key, value in keys.items():
        raw = as_written(value)
        try:
            if key == "location":
                fields[key] = parse_location(raw)
            elif not isinstance(raw, list):
                rd.error(value, f"{key} must be a list")
            else:
                fields[key] = FIELDS[key](raw)
        except ValueError as e:
            rd.error(value, f"time interval {name!r}: {e}")
    return TimeInterval(**fields)


def read_receivers(
    rd: Reader, node: Node | None
) -> tuple[dict[str, Receiver], dict[str, list[tuple[str, Node]]]]:
    out: dict[str, Receiver] = {}
    refs: dict[str, list[tuple[str, Node]]] = {
        "users": [],
        "schedules": [],
        "robots": [],
        "escalation": [],
    }
    for item in rd.seq(node, "receivers") if node is not None else []:
        keys = rd.mapping(item, "a receiver", RECEIVER_KEYS, ("name",))
        if keys is None or "name" not in keys:
            continue
        name = rd.text(keys["name"], "receiver name")
        if name is None:
            continue
        if name in out:
            rd.error(keys["name"], f"duplicate receiver {name!r}")
        users = rd.texts(keys["users"], "users") if "users" in keys else []
        schedules = rd.texts(keys["schedules"], "schedules") if "schedules" in keys else []
        refs["users"] += users
        refs["schedules"] += schedules
        robots = rd.texts(keys["robots"], "robots") if "robots" in keys else []
        refs["robots"] += robots
        depts = (
            [rd.integer(d, "a department id") for d in rd.seq(keys["departments"], "departments")]
            if "departments" in keys
            else []
        )
        template = rd.text(keys["template"], "template") if "template" in keys else None
        msgtype = rd.text(keys["msgtype"], "msgtype") if "msgtype" in keys else "markdown"
        if msgtype not in MSGTYPES:
            rd.error(keys["msgtype"], f"msgtype must be one of {', '.join(MSGTYPES)}")
        resolved = True
        if "send_resolved" in keys:
            resolved = rd.boolean(keys["send_resolved"], "send_resolved") is not False
        policy = rd.text(keys["escalation"], "escalation") if "escalation" in keys else None
        if policy is not None:
            refs["escalation"].append((policy, keys["escalation"]))
        notify_ack = "notify_ack" in keys and rd.boolean(keys["notify_ack"], "notify_ack") is True
        out[name] = Receiver(
            name=name,
            users=tuple(dict.fromkeys(u for u, _ in users)),
            departments=tuple(d for d in depts if d is not None),
            schedules=tuple(s for s, _ in schedules),
            template=template,
            msgtype=msgtype or "markdown",
            send_resolved=resolved,
            robots=tuple(dict.fromkeys(r for r, _ in robots)),
            template_line=line(keys["template"]) if "template" in keys else 0,
            escalation=policy,
            notify_ack=notify_ack,
        )
    return out, refs


@dataclass(frozen=True)
class Reload:
    """The outcome of `reload`: the table to serve, and what went wrong if anything."""

    table: RoutingTable
    changed: bool
    problems: tuple[ConfigProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def reload(path: str, current: RoutingTable, directory: Directory | None = None) -> Reload:
    """Load `path` again. A failed load keeps `current`, and says why."""
    try:
        table = load(path, directory if directory is not None else current.directory)
    except ConfigError as e:
        return Reload(current, False, tuple(e.problems))
    return Reload(table, table != current)


def fingerprint(path: str) -> str:
    """A digest of the file's bytes ("" if unreadable), for change polling."""
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return ""
