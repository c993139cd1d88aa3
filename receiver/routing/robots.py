"""The `robots:` section of routing.yaml: DingTalk group robots, read strictly. Pure.

    robots:
      db-team:
        webhook: https://oapi.dingtalk.com/robot/send?access_token=${DB_ROBOT_TOKEN}
        secret: ${DB_ROBOT_SECRET}     # 加签; optional
        msgtype: markdown              # markdown (default) | text | action_card

A receiver's `robots: [db-team]` posts a copy of its message to that group,
@mentioning whoever it paged. The webhook's access_token and the secret are
credentials: a Robot's repr, and every problem the loader reports, leave them out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from yaml.nodes import Node

from receiver.routing.yamlnodes import Reader, line

ROBOT_KEYS = ("webhook", "secret", "msgtype")
ROBOT_MSGTYPES = ("markdown", "text", "action_card")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_CREDENTIAL = re.compile(r"((?:access_token|sign|timestamp)=)[^&\s'\"]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A webhook URL without its access_token (or a signature), for reprs and errors."""
    return _CREDENTIAL.sub(r"\1<redacted>", url)


@dataclass(frozen=True)
class Robot:
    """One group robot. `webhook` and `secret` are credentials: never print them."""

    name: str
    webhook: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    msgtype: str = "markdown"
    line: int = field(default=0, compare=False)

    def __repr__(self) -> str:
        secret = "<set>" if self.secret else None
        return (
            f"Robot(name={self.name!r}, webhook={redact_url(self.webhook)!r},"
            f" secret={secret!r}, msgtype={self.msgtype!r})"
        )

    __str__ = __repr__


def check_webhook(url: str) -> str | None:
    """What is wrong with a webhook URL (None: nothing). Never quotes the URL itself."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL (copy the robot's whole Webhook URL)"
    if parts.scheme == "http" and host not in LOOPBACK:
        return "must use https: the URL carries the robot's access_token"
    if not parse_qs(parts.query).get("access_token", [""])[0]:
        return "has no access_token=… (copy the robot's whole Webhook URL)"
    return None


def read_robots(rd: Reader, node: Node) -> tuple[dict[str, Robot], set[str]]:
    """The valid robots, and every name defined (a robot with a problem is still defined)."""
    out: dict[str, Robot] = {}
    names: set[str] = set()
    for name, _, body in rd.pairs(node, "robots"):
        names.add(name)
        what = f"robot {name!r}"
        keys = rd.mapping(body, what, ROBOT_KEYS, ("webhook",))
        if keys is None or "webhook" not in keys:
            continue
        webhook = rd.text(keys["webhook"], f"{what} webhook")
        problem = check_webhook(webhook) if webhook is not None else None
        if problem:
            rd.error(keys["webhook"], f"{what} webhook {problem}")
        secret = rd.text(keys["secret"], f"{what} secret") if "secret" in keys else None
        if secret is not None and not secret.startswith("SEC"):
            rd.warn(
                keys["secret"], f"{what}: a 加签 secret starts with SEC; is this the right one?"
            )
        msgtype = rd.text(keys["msgtype"], f"{what} msgtype") if "msgtype" in keys else "markdown"
        if msgtype not in ROBOT_MSGTYPES:
            rd.error(keys["msgtype"], f"{what} msgtype must be one of {', '.join(ROBOT_MSGTYPES)}")
        if webhook is None or problem or msgtype not in ROBOT_MSGTYPES:
            continue
        out[name] = Robot(name, webhook, secret, msgtype or "markdown", line(body))
    return out, names


def check_robot_refs(rd: Reader, refs: list[tuple[str, Node]], names: set[str]) -> None:
    for name, node in refs:
        if name not in names:
            rd.error(node, f"undefined robot {name!r} (define it under robots:)")
