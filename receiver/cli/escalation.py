"""`dingtalk-receiver ack` and `dingtalk-receiver escalations`: acknowledge from a terminal,
and see which escalations are running."""

from __future__ import annotations

import time
from datetime import datetime

import click

from receiver.settings import Settings, parse_duration


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as e:
        raise click.ClickException(str(e)) from None


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") if ts else "-"


@click.command("ack")
@click.argument("notification_id", type=int)
@click.option("--as", "userid", required=True, help="the userid acknowledging")
@click.option("--silence", "silence", help="also silence the group in Alertmanager: 1h, 4h, 30m")
def ack_command(notification_id: int, userid: str, silence: str | None) -> None:
    """Acknowledge notification ID's group as USERID (the ID `escalations` shows)."""
    from receiver.delivery.acks import acknowledge
    from receiver.delivery.state import State
    from receiver.errors import ConfigError, OutboxUnavailable

    seconds = None
    if silence is not None:
        try:
            seconds = parse_duration(silence)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--silence") from None
    try:
        state = State(_settings())
        outcome = acknowledge(state, notification_id, userid, via="cli", silence_s=seconds)
    except LookupError as e:
        raise click.ClickException(str(e)) from None
    except (ConfigError, OutboxUnavailable) as e:
        raise click.ClickException(str(e)) from None
    if outcome.receivers:
        click.echo(f"acknowledged by {outcome.name} ({userid}): {', '.join(outcome.receivers)}")
    else:
        click.echo(f"already acknowledged by {outcome.name} ({userid})")
    if outcome.silence_id:
        click.echo(f"silenced for {silence}: {outcome.silence_id}")
    if outcome.silence_error:
        raise click.ClickException(f"the silence failed: {outcome.silence_error}")


@click.command("escalations")
@click.option("--all", "everything", is_flag=True, help="stopped ones too")
def escalations_command(everything: bool) -> None:
    """The active escalations: receiver, policy, step, when the next is due."""
    from receiver.delivery.outbox import Outbox
    from receiver.errors import OutboxUnavailable

    try:
        found = Outbox(_settings().data_dir).escalations(active_only=not everything)
    except OutboxUnavailable as err:
        raise click.ClickException(str(err)) from None
    if not found:
        click.echo("no active escalations" if not everything else "no escalations")
        return
    now = time.time()
    for e in found:
        due = f"next step due {_when(e.due_at)} (in {e.due_at - now:.0f}s)" if e.due_at else ""
        click.echo(
            f"{e.id:>5} {e.state:<9} receiver={e.receiver} policy={e.policy} step={e.step}"
            f" notification={e.notification_id} started={_when(e.started_at)} {due}".rstrip()
        )
        click.echo(f"      group {e.group_key}")


COMMANDS = (ack_command, escalations_command)
