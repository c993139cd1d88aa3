"""`send-test --robot NAME`: one real post to a group robot of routing.yaml."""

from __future__ import annotations

import click

from receiver.errors import ConfigError, DingTalkError
from receiver.messages.robot import convert
from receiver.robots.client import RobotClient
from receiver.routing import load_routing
from receiver.settings import Settings


def post_test(settings: Settings, name: str, content: str) -> None:
    """Post `content` to robot `name` in the robot's msgtype; say what DingTalk refused."""
    try:
        table = load_routing(settings.routing)
    except ConfigError as e:
        raise click.ClickException(f"invalid configuration:\n{e}") from None
    robot = table.robots.get(name)
    if robot is None:
        known = ", ".join(sorted(table.robots)) or "none"
        raise click.ClickException(f"no robot {name!r} in {settings.routing} (robots: {known})")
    title = "dingtalk-receiver test"
    msg: dict[str, object]
    if robot.msgtype == "text":
        msg = {"msgtype": "text", "text": {"content": content}}
    elif robot.msgtype == "action_card":
        url = settings.external_url or "https://www.dingtalk.com/"
        card = {"title": title, "markdown": content, "single_title": title, "single_url": url}
        msg = {"msgtype": "action_card", "action_card": card}
    else:
        msg = {"msgtype": "markdown", "markdown": {"title": title, "text": content}}
    try:
        RobotClient(timeout=settings.http_timeout, proxy=settings.proxy).post(
            robot, convert(msg, ())
        )
    except DingTalkError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"posted: robot={name} msgtype={robot.msgtype}")
