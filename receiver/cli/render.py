"""`dingtalk-receiver render`: the messages a payload would produce, without sending them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from receiver.delivery.pipeline import preview
from receiver.errors import ConfigError, PayloadError
from receiver.ingest import alertmanager as ingest
from receiver.ingest.grafana import parse_grafana
from receiver.messages.render import MSGTYPES, Renderer, msg_size
from receiver.messages.robot import ROBOT_MAX_BYTES
from receiver.model import Notification
from receiver.routing import load_routing
from receiver.routing.table import Route, RoutingTable
from receiver.settings import Settings


@dataclass(frozen=True)
class Shown:
    receiver: str
    userids: tuple[str, ...]
    departments: tuple[int, ...]
    msg: dict[str, Any]
    robot: str | None = None  # a group robot's copy: msg is its body (20,000 bytes at most)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "receiver": self.receiver,
            "userids": list(self.userids),
            "departments": list(self.departments),
            "bytes": msg_size(self.msg),
            "msg": self.msg,
        }
        return out | ({"robot": self.robot} if self.robot else {})


def _parse(path: str, source: str) -> Notification:
    parser: Callable[[bytes], Notification] = (
        ingest.parse_alertmanager if source == "alertmanager" else parse_grafana
    )
    with open(path, "rb") as fh:
        body = fh.read()
    try:
        return parser(body)
    except PayloadError as e:
        raise click.ClickException(f"{path}: {e}") from None


def _when(at: str | None) -> datetime:
    if not at:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {at!r}", param_hint="--at") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _text(msg: dict[str, Any]) -> str:
    part = msg[msg["msgtype"]]
    return str(part.get("text") or part.get("content") or part.get("markdown") or "")


@click.command("render")
@click.option("--payload", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--source", type=click.Choice(["alertmanager", "grafana"]), default="alertmanager")
@click.option(
    "--receiver", "receiver_name", help="Use this routing.yaml receiver, skipping the route tree."
)
@click.option("--template", help="Render with this template file, without routing.")
@click.option(
    "--msgtype", type=click.Choice(MSGTYPES), help="Render as this msgtype, without routing."
)
@click.option("--routing", help="routing.yaml (default: RECEIVER_ROUTING).")
@click.option("--templates", help="Template folder (default: RECEIVER_TEMPLATES).")
@click.option("--at", help="The notification time, ISO 8601 (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def render_command(
    payload: str,
    source: str,
    receiver_name: str | None,
    template: str | None,
    msgtype: str | None,
    routing: str | None,
    templates: str | None,
    at: str | None,
    as_json: bool,
) -> None:
    """Print the exact DingTalk messages a payload would produce, with their byte sizes.

    With --template or --msgtype (and no --receiver) the payload is rendered
    directly; otherwise it is routed through routing.yaml like a real webhook.
    """
    settings = Settings.from_env(os.environ, routing=routing, templates=templates)
    n = _parse(payload, source)
    now = _when(at)
    renderer = Renderer.from_settings(settings)
    table = None
    if receiver_name or not (template or msgtype):
        try:
            table = load_routing(settings.routing)
        except ConfigError as e:
            raise click.ClickException(str(e)) from None
    try:
        entries = preview(
            table or RoutingTable(Route("-"), {}), renderer, n, now=now,
            receiver=receiver_name, template=template, msgtype=msgtype,
        )  # fmt: skip
    except KeyError:
        raise click.ClickException(f"no receiver {receiver_name!r} in {settings.routing}") from None
    shown = [Shown(e.receiver, e.userids, e.departments, e.msg, e.robot) for e in entries]
    if as_json:
        out = {"max_bytes": settings.max_message_bytes, "messages": [s.as_dict() for s in shown]}
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    if not shown:
        click.echo("no messages: no alert reaches a receiver that sends it")
    for i, s in enumerate(shown, 1):
        to = (
            f"robot: {s.robot}  "
            if s.robot
            else f"userids: {','.join(s.userids) or '-'}  "
            f"departments: {','.join(map(str, s.departments)) or '-'}  "
        )
        budget = ROBOT_MAX_BYTES if s.robot else settings.max_message_bytes
        click.echo(
            f"# message {i}/{len(shown)}  receiver: {s.receiver}  {to}"
            f"bytes: {msg_size(s.msg)}/{budget}"
        )
        click.echo(json.dumps(s.msg, ensure_ascii=False, indent=2))
        click.echo("# as read:")
        click.echo(_text(s.msg))
        click.echo()
