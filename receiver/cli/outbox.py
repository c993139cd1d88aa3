"""`dingtalk-receiver outbox`: see what is queued, retrying, dead or sent, and act on it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click

from receiver.delivery import wake
from receiver.delivery.outbox import COUNTED, Item, Outbox
from receiver.delivery.outbox_schema import OUTBOX_FILE
from receiver.errors import OutboxUnavailable
from receiver.settings import Settings, parse_duration


@contextmanager
def _outbox() -> Iterator[Outbox]:
    """The outbox serve writes, named on stderr; never a new empty one in ./data."""
    try:
        settings = Settings.from_env()
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    data_dir = settings.data_dir
    if settings.database_url:  # every replica's outbox, in PostgreSQL
        click.echo("outbox: PostgreSQL (RECEIVER_DATABASE_URL)", err=True)
    else:
        path = os.path.join(os.path.abspath(data_dir), OUTBOX_FILE)
        if not os.path.isfile(path):
            raise click.ClickException(
                f"no outbox at {path} (RECEIVER_DATA_DIR={data_dir}): set RECEIVER_DATA_DIR"
                " to the data dir serve uses, or run from the directory it runs in"
            )
        click.echo(f"outbox: {path}", err=True)
    wake.configure(settings.delivery_processes)  # a retry wakes every delivery process
    try:
        yield Outbox(data_dir, database_url=settings.database_url)
    except OutboxUnavailable as e:
        raise click.ClickException(str(e)) from None


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") if ts else "-"


def _recipients(item: Item) -> str:
    if item.robot is not None:  # a group robot's copy: the group, and whom it @mentions
        at = (item.msg.get("at") or {}).get("atUserIds") or []
        return f"robot:{item.robot}" + "".join(f" @{u}" for u in at)
    return ",".join([*item.userids, *(f"dept:{d}" for d in item.departments)])


@click.group("outbox")
def outbox() -> None:
    """Show queued, retrying, dead and sent messages, and act on them."""


@outbox.command("list")
@click.option("--state", type=click.Choice(COUNTED), help="only items in this state")
@click.option("--limit", type=int, default=200, show_default=True)
def list_items(state: str | None, limit: int) -> None:
    """One line per item: id, state, attempts, age, receiver, recipients, last error.

    `pending` lines (ids p1, p2 …) are accepted webhooks that the delivery process
    has not routed and rendered into items yet.
    """
    with _outbox() as box:
        counts = box.counts()
        pending = box.pending(limit) if state in (None, "pending") else []
        items = box.items(state, limit=limit) if state != "pending" else []
        behind, pause = box.waiting_behind(), box.pause_state()
    click.echo(" ".join(f"{s}={n}" for s, n in counts.items()))
    now = time.time()
    if pause is not None:
        click.echo(
            f"sending paused since {_when(pause.since)} ({pause.reason}): {pause.error};"
            f" next probe {_when(pause.probe_at)}"
        )
    for p in pending:
        error = f"  {p.last_error}" if p.last_error else ""
        click.echo(
            f"{'p' + str(p.id):>6} pending attempts={p.attempts} age={now - p.received_at:.0f}s"
            f" {p.source} {p.receiver or '(route tree)'}{error}"
        )
    for i in items:
        error = f"  [{i.errcode}] {i.last_error}" if i.last_error and i.state != "sent" else ""
        why = _why(i, behind.get(i.id), pause is not None, now)
        click.echo(
            f"{i.id:>6} {i.state:<7} attempts={i.attempts} age={now - i.created_at:.0f}s"
            f" {i.receiver} -> {_recipients(i)}{'  ' + why if why else ''}{error}"
        )


def _why(item: Item, behind: int | None, paused: bool, now: float) -> str:
    """Why an unfinished item is not sent now: the first reason that holds it."""
    if item.state == "superseded":
        return f"superseded by #{item.superseded_by}"
    if item.state == "sending":
        return f"call started {_when(item.call_started_at)}" if item.call_started_at else ""
    if item.state not in ("queued", "retry"):
        return ""
    if item.hold_reason:
        return f"held: {item.hold_reason}"
    if behind is not None:
        return f"waits behind #{behind} (same alert group and recipient)"
    if item.next_attempt_at > now:
        return f"backoff until {_when(item.next_attempt_at)}"
    return "waits for the pause to end" if paused else ""


@outbox.command()
@click.argument("item_id", type=int)
def show(item_id: int) -> None:
    """The message, its recipients, every attempt and every error."""
    with _outbox() as box:
        item = box.get(item_id)
        if item is None:
            raise click.ClickException(f"no item {item_id}")
        history = box.history(item_id)
        people = box.reached_by_item(item_id)
    click.echo(f"id:          {item.id}")
    click.echo(
        f"state:       {item.state}" + (f" (held: {item.hold_reason})" if item.hold_reason else "")
    )
    click.echo(f"receiver:    {item.receiver}  (source {item.source}, group {item.group_key})")
    click.echo(f"recipients:  {_recipients(item)}")
    click.echo(f"accepted:    {_when(item.created_at)}")
    if item.state in ("queued", "retry"):
        click.echo(f"next try:    {_when(item.next_attempt_at)}")
    if item.superseded_by is not None:
        click.echo(f"superseded:  by #{item.superseded_by}, a newer message of the same group")
    if item.call_started_at is not None and item.state != "sent":
        click.echo(
            f"call:        started {_when(item.call_started_at)}, no answer recorded: it may"
            " have reached DingTalk (sent again, DingTalk shows the same content once a day)"
        )
    click.echo(f"sent:        {_when(item.sent_at)}  task_ids={list(item.task_ids)}")
    if item.last_error:
        click.echo(f"last error:  [{item.errcode}] {item.last_error}")
    if item.send_result is not None:
        click.echo("send result: " + json.dumps(item.send_result, ensure_ascii=False))
    if people:
        click.echo("per person (sent / read / acknowledged):")
        for p in people:
            step = f"  (escalation step {p.step})" if p.step else ""
            sent = _when(item.sent_at) if item.state == "sent" else item.state
            click.echo(
                f"  {p.userid:<20} sent={sent}"
                f" read={_when(p.read_at)} acknowledged={_when(p.acked_at)}{step}"
            )
    click.echo("message:")
    click.echo(json.dumps(item.msg, ensure_ascii=False, indent=2))
    click.echo(f"history ({item.attempts} attempts):")
    for h in history:
        code = f" [{h['errcode']}]" if h["errcode"] is not None else ""
        click.echo(f"  {_when(h['at'])} {h['outcome']}{code} {h['error'] or ''}".rstrip())


def _pending_id(value: str) -> int | None:
    """The N of a pending webhook's id `pN`, as `outbox list` shows it; None for an item id."""
    if value[:1] in ("p", "P") and value[1:].isdigit():
        return int(value[1:])
    if not value.isdigit():
        raise click.BadParameter(f"{value!r}: an item id (12) or a pending id (p3)")
    return None


@outbox.command()
@click.argument("item_id", required=False)
@click.option("--dead", is_flag=True, help="every dead item")
def retry(item_id: str | None, dead: bool) -> None:
    """Send an item (or every dead item) again, now. Its give-up age starts afresh.

    A pending id (p3) is routed and rendered again at the next poll: after a fix to
    routing.yaml, say, that makes it plannable.
    """
    if (item_id is None) == (not dead):
        raise click.UsageError("give an ID or --dead, not both")
    pending = _pending_id(item_id) if item_id is not None else None
    with _outbox() as box:
        if pending is not None:
            if not box.replan(pending):
                raise click.ClickException(f"no pending webhook p{pending}")
            click.echo(f"replanning p{pending}")
            return
        n = box.requeue(int(item_id) if item_id is not None else None)
    if item_id is not None and n == 0:
        raise click.ClickException(f"item {item_id} is not dead, retrying or queued")
    click.echo(f"requeued {n}")


@outbox.command()
@click.argument("item_id")
def drop(item_id: str) -> None:
    """Give up a message: a pending webhook (p3) that can never be planned, or a dead
    or held item (12). What is dropped is not sent."""
    n = _pending_id(item_id)
    with _outbox() as box:
        p = box.drop_pending(n) if n is not None else None
        i = box.drop(int(item_id)) if n is None else None
    if p is not None:
        click.echo(
            f"dropped p{p.id}: {p.source} {p.receiver or '(route tree)'} accepted"
            f" {_when(p.received_at)}, {p.attempts} attempts; last error: {p.last_error or '-'}"
        )
    elif i is not None:
        click.echo(
            f"dropped {i.id}: {i.state} {i.receiver} -> {_recipients(i)}, {i.attempts} attempts;"
            f" last error: {i.last_error or '-'}"
        )
    else:
        raise click.ClickException(
            f"no pending webhook p{n}" if n is not None else f"item {item_id} is not dead or held"
        )


@outbox.command()
@click.option("--sent-older-than", "older", required=True, help="a duration: 90s, 12h, 7d")
def purge(older: str) -> None:
    """Delete sent items (and their history) sent longer ago than this."""
    try:
        seconds = parse_duration(older)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--sent-older-than") from None
    with _outbox() as box:
        n = box.purge_sent(seconds)
    click.echo(f"purged {n}")
