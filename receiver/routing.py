"""The routing table: Alertmanager's route tree over DingTalk receivers. Pure.

Spine version: `=`/`!=`/`=~`/`!~` matchers, `continue`, receivers with users.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from .errors import ConfigError, ConfigProblem

_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class Route:
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    routes: tuple[Route, ...] = ()

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        if not all(m.matches(labels) for m in self.matchers):
            return []
        found: list[Route] = []
        for child in self.routes:
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [self]


@dataclass(frozen=True)
class Receiver:
    name: str
    users: tuple[str, ...] = ()
    departments: tuple[int, ...] = ()
    template: str | None = None
    msgtype: str = "markdown"
    send_resolved: bool = True


@dataclass(frozen=True)
class Recipients:
    userids: tuple[str, ...] = ()
    departments: tuple[int, ...] = ()


@dataclass(frozen=True)
class RoutingTable:
    route: Route
    receivers: dict[str, Receiver]
    users: dict[str, str] = field(default_factory=dict)
    path: str = "routing.yaml"

    def match(self, labels: Mapping[str, str], now: datetime | None = None) -> list[str]:
        """Receiver names for these labels, in tree order, without repeats."""
        names: list[str] = []
        for route in self.route.match(labels):
            if route.receiver not in names:
                names.append(route.receiver)
        return names

    def recipients(self, receiver: str, now: datetime | None = None) -> Recipients:
        r = self.receivers[receiver]
        userids = tuple(dict.fromkeys(self.users.get(u, u) for u in r.users))
        return Recipients(userids=userids, departments=r.departments)


def parse_matcher(text: str) -> Matcher:
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(f"bad matcher {text!r}")
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if op in ("=~", "!~"):
        re.compile(value)
    return Matcher(name, op, value)


def _route(raw: Any, parent_receiver: str = "") -> Route:
    if not isinstance(raw, dict):
        raise ValueError("a route must be a mapping")
    receiver = str(raw.get("receiver") or parent_receiver)
    matchers = tuple(parse_matcher(str(m)) for m in raw.get("matchers") or [])
    children = tuple(_route(c, receiver) for c in raw.get("routes") or [])
    return Route(
        receiver=receiver,
        matchers=matchers,
        continue_=bool(raw.get("continue", False)),
        routes=children,
    )


def load_routing(path: str) -> RoutingTable:
    """Load and validate routing.yaml; raise ConfigError naming FILE:LINE."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except OSError as e:
        raise ConfigError([ConfigProblem(path, 0, f"cannot read: {e.strerror}")]) from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", -1) + 1
        raise ConfigError([ConfigProblem(path, line, f"invalid YAML: {e}")]) from None
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(path, 1, "the top level must be a mapping")])
    try:
        users = {str(k): str(v) for k, v in (raw.get("users") or {}).items()}
        receivers = {}
        for r in raw.get("receivers") or []:
            receivers[str(r["name"])] = Receiver(
                name=str(r["name"]),
                users=tuple(str(u) for u in r.get("users") or []),
                departments=tuple(int(d) for d in r.get("departments") or []),
                template=r.get("template"),
                msgtype=str(r.get("msgtype", "markdown")),
                send_resolved=bool(r.get("send_resolved", True)),
            )
        route = _route(raw.get("route"))
    except (ValueError, KeyError, TypeError, re.error) as e:
        raise ConfigError([ConfigProblem(path, 1, str(e))]) from None
    problems = [
        ConfigProblem(path, 1, f"route uses undefined receiver {name!r}")
        for name in _receiver_names(route)
        if name not in receivers
    ]
    if problems:
        raise ConfigError(problems)
    return RoutingTable(route=route, receivers=receivers, users=users, path=path)


def _receiver_names(route: Route) -> list[str]:
    names = [route.receiver]
    for child in route.routes:
        names.extend(n for n in _receiver_names(child) if n)
    return names
