"""`dingtalk-receiver sync-users` and `dingtalk-receiver users find`: the directory's CLI."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime

import click

from receiver.directory.pg import open_store
from receiver.directory.store import User
from receiver.directory.sync import Progress, spacing, sync
from receiver.errors import ReceiverError
from receiver.settings import Settings

NO_DIRECTORY = "no directory synced yet: run `dingtalk-receiver sync-users` first"


class ProgressLine:
    """One line on stderr, rewritten in place: departments and users so far."""

    def __init__(self) -> None:
        self.width = 0

    def __call__(self, p: Progress) -> None:
        if p.phase == "departments":
            text = f"departments: {p.departments} found"
        else:
            text = f"departments: {p.paged}/{p.departments} listed, users: {p.users}"
        click.echo("\r" + text.ljust(self.width), nl=False, err=True)
        self.width = len(text)

    def done(self) -> None:
        if self.width:
            click.echo("", err=True)


@click.command("sync-users")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show departments and users so far [default: when stderr is a terminal].",
)
def sync_users(progress: bool | None) -> None:
    """Pull the DingTalk directory (departments and users) into RECEIVER_DATA_DIR.

    routing.yaml aliases such as {mobile: ...}, {email: ...} or {name: ...} are
    looked up in it. A sync that fails keeps the directory synced before.
    """
    settings = Settings.from_env()
    if settings.dry_run:
        raise click.ClickException(
            "sync-users needs DINGTALK_APP_KEY, DINGTALK_APP_SECRET and DINGTALK_APP_AGENT_ID"
        )
    from receiver.dingtalk.client import Client

    store = open_store(settings.data_dir, settings.database_url)
    show = sys.stderr.isatty() if progress is None else progress
    line = ProgressLine() if show else None
    try:
        stats = sync(store, Client(settings), progress=line, min_interval=spacing(settings))
    except ReceiverError as e:
        if line:
            line.done()
        kept = "; the previous directory is kept" if store.synced_at() is not None else ""
        raise click.ClickException(f"sync failed: {e}{kept}") from None
    if line:
        line.done()
    click.echo(
        f"synced {stats.departments} departments and {stats.users} users into {store.path}"
        f" ({stats.calls} calls, {stats.retries} retries, {stats.seconds:.1f}s)"
    )
    if stats.users and not stats.with_mobile:
        click.echo(
            "warning: no user came with a mobile number; {mobile: ...} aliases will not resolve."
            " Grant the app the mobile field permission (个人手机号信息) in the DingTalk"
            " developer console.",
            err=True,
        )
    if stats.users and not stats.with_email:
        click.echo(
            "warning: no user came with an email; {email: ...} aliases will not resolve."
            " Grant the app the email field permission (邮箱等个人信息) if you use them.",
            err=True,
        )


@click.group()
def users() -> None:
    """Look people up in the synced DingTalk directory."""


@users.command("find")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", default=50, show_default=True, help="At most this many people.")
def users_find(text: str, as_json: bool, limit: int) -> None:
    """People whose name, mobile or email contains TEXT, with their userids.

    Exit 1 when no one matches.
    """
    settings = Settings.from_env()
    store = open_store(settings.data_dir, settings.database_url)
    try:
        synced = store.synced_at()
        if synced is None:
            raise click.ClickException(NO_DIRECTORY)
        found = store.search(text, limit=limit)
        depts = store.departments()
    except ReceiverError as e:
        raise click.ClickException(str(e)) from None
    names = {d.dept_id: d.name or "(root)" for d in depts.values()}
    if as_json:
        out = [{**asdict(u), "departments": list(u.departments)} for u in found]
        for item in out:
            item.pop("keys", None)
        click.echo(json.dumps(out, ensure_ascii=False))
    else:
        for u in found:
            click.echo(_row(u, names))
        when = datetime.fromtimestamp(synced).astimezone().strftime("%Y-%m-%d %H:%M %Z")
        click.echo(f"{len(found)} found (directory synced {when})", err=True)
    if not found:
        sys.exit(1)


def _row(u: User, names: dict[int, str]) -> str:
    depts = ", ".join(names.get(d, str(d)) for d in u.departments)
    fields = [u.userid, u.name, u.mobile or "-", u.email or "-", u.title or "-", depts or "-"]
    if not u.active:
        fields.append("(inactive)")
    return "\t".join(fields)


COMMANDS = [sync_users, users]
