"""Commands over the routing table: check-config, routes test/diff, oncall.

Each one loads routing.yaml through `load_routing`, the loader serve uses.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from datetime import UTC, datetime, tzinfo

import click

from receiver.delivery.configcheck import check_templates
from receiver.directory.store import open_directory
from receiver.errors import ConfigError, PayloadError
from receiver.routing import explain as route_explain
from receiver.routing import load_routing
from receiver.routing.explain import diff, explain
from receiver.routing.table import RoutingTable, draw_tree, tree_json
from receiver.settings import Settings

SAMPLES = "tests/fixtures/alertmanager/*.json"  # in a checkout
# Installed (the Docker image has no tests/): the samples the package ships for the console.
PACKAGED_SAMPLES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "web", "console", "samples", "alertmanager-*.json",
)  # fmt: skip

routing_option = click.option(
    "--routing",
    "routing_path",
    envvar="RECEIVER_ROUTING",
    default="routing.yaml",
    show_default=True,
    help="The routing table.",
)
at_option = click.option(
    "--at", "at", default=None, metavar="ISO8601", help="Evaluate at this time (default: now)."
)


def parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint="--at") from None
    return t if t.tzinfo else t.astimezone()  # a naive time is the machine's local time


def load_or_exit(path: str, *, warnings: bool = False, serving: bool = False) -> RoutingTable:
    """The table in `path`, or exit 1 with its problems. `serving` (check-config) also
    says which table a running serve keeps while this file is refused."""
    settings = Settings.from_env()
    try:
        directory = open_directory(settings.data_dir)
        table = load_routing(path, directory, strict_lookups=True)
    except ConfigError as e:
        for p in e.problems:
            click.echo(str(p), err=True)
        # On stdout: stderr stays one FILE:LINE problem a line. Only for the file serve
        # reads (RECEIVER_ROUTING): the last good copy is that file's, not another's.
        if serving and os.path.abspath(path) == os.path.abspath(settings.routing):
            click.echo(serving_instead(path, settings.data_dir))
        sys.exit(1)
    for w in table.warnings if warnings else ():
        click.echo(str(w), err=True)
    return table


def serving_instead(path: str, data_dir: str) -> str:
    # Imported here: delivery.state imports prometheus_client, which must not be imported
    # before `serve` sets PROMETHEUS_MULTIPROC_DIR (every command module is imported first).
    from receiver.delivery.state import LAST_GOOD_FILE

    last_good = os.path.join(data_dir, LAST_GOOD_FILE)
    try:
        saved = datetime.fromtimestamp(os.path.getmtime(last_good), UTC).isoformat(
            timespec="seconds"
        )
    except OSError:
        return f"{path} is refused: a running serve keeps the table it loaded before"
    return (
        f"{path} is refused: a running serve keeps the table it loaded before;"
        f" the last good copy is {last_good} (saved {saved})"
    )


@click.command("check-config")
@routing_option
@click.option("--templates", envvar="RECEIVER_TEMPLATES", default="templates", show_default=True)
def check_config(routing_path: str, templates: str) -> None:
    """Validate routing.yaml and templates as serve loads them. Exit 0 if valid, else 1."""
    table = load_or_exit(routing_path, warnings=True, serving=True)
    checked = check_templates(table, templates)
    for p in [*checked.warnings, *checked.errors]:
        click.echo(str(p), err=True)
    if checked.errors:
        sys.exit(1)
    routes = sum(1 for _ in table.route.walk())
    click.echo(
        f"{routing_path}: OK ({len(table.receivers)} receivers, {routes} routes, "
        f"{len(table.schedules)} schedules, {len(table.robots)} robots,"
        f" {len(table.warnings) + len(checked.warnings)} warnings)"
    )


@click.group("routes")
def routes() -> None:
    """Test the route tree, and compare two versions of it."""


def parse_labels(pairs: tuple[str, ...]) -> dict[str, str]:
    """LABEL=VALUE arguments, with matcher syntax for the value (as amtool reads them)."""
    try:
        return route_explain.parse_labels(pairs)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@routes.command("test")
@routing_option
@at_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--verify-receivers", default=None, help="Expected receivers, comma-separated.")
@click.option("--tree", is_flag=True, help="Draw the route tree first.")
@click.argument("labels", nargs=-1)
def routes_test(
    routing_path: str,
    at: str | None,
    as_json: bool,
    verify_receivers: str | None,
    tree: bool,
    labels: tuple[str, ...],
) -> None:
    """Which receivers and people an alert with LABEL=VALUE… reaches."""
    table = load_or_exit(routing_path)
    now = parse_at(at)
    answer = explain(table, parse_labels(labels), now)
    names = list(answer.receivers)
    if as_json:
        doc = answer.as_json()
        if tree:
            doc["tree"] = tree_json(table.route)
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        if tree:
            click.echo("\n".join(draw_tree(table.route)))
        click.echo(",".join(names))
        for r in answer.routes:
            if not r.notifies:
                click.echo(f"  {r.receiver}: matched, but muted or inactive at {now.isoformat()}")
        for one in answer.per_receiver:
            on_call = [f"{s} on call: {who}" for s, who in one.on_call]
            click.echo(
                f"  {one.name}: {_who(one.userids, one.departments)}"
                + "".join(f"; {o}" for o in on_call)
            )
        click.echo(f"userids: {', '.join(answer.userids) or '-'}")
        click.echo(f"departments: {', '.join(map(str, answer.departments)) or '-'}")
    if verify_receivers is not None and verify_receivers != ",".join(names):
        click.echo("WARNING: Expected receivers did not match resolved receivers.", err=True)
        sys.exit(1)


def _who(userids: tuple[str, ...], departments: tuple[int, ...]) -> str:
    parts = [f"userids {', '.join(userids)}" if userids else "", ""]
    if departments:
        parts[1] = f"departments {', '.join(map(str, departments))}"
    return "; ".join(p for p in parts if p) or "no one"


@routes.command("diff")
@click.argument("old")
@click.argument("new")
@click.option(
    "--payload", "payloads", multiple=True, help="Alertmanager webhook JSON (repeatable)."
)
@at_option
def routes_diff(old: str, new: str, payloads: tuple[str, ...], at: str | None) -> None:
    """Whose pager changes from OLD to NEW routing.yaml, for these payloads.

    Without --payload, the bundled samples: tests/fixtures/alertmanager/*.json in a
    checkout, else the Alertmanager samples installed with the package.
    Exit 0 if nothing changes, 1 if some alert reaches other receivers or people.
    """
    from receiver.ingest.alertmanager import parse_alertmanager

    before, after = load_or_exit(old), load_or_exit(new)
    now = parse_at(at)
    files = list(payloads) or sorted(glob.glob(SAMPLES)) or sorted(glob.glob(PACKAGED_SAMPLES))
    if not payloads:
        where = os.path.dirname(files[0]) if files else "-"
        click.echo(f"no --payload: the bundled samples in {where}", err=True)
    if not files:
        raise click.UsageError("no payloads: pass --payload FILE")
    alerts: list[tuple[str, dict[str, str]]] = []
    for path in files:
        try:
            with open(path, "rb") as fh:
                n = parse_alertmanager(fh.read())
        except (OSError, PayloadError) as e:
            raise click.UsageError(f"{path}: {e}") from None
        alerts += [(os.path.basename(path), a.labels) for a in n.alerts]
    changes, total = diff(before, after, alerts, now)
    for c in changes:
        labels = ",".join(f"{k}={v}" for k, v in sorted(c.labels.items()))
        click.echo(f"{c.source}: {{{labels}}}")
        if c.before != c.after:
            click.echo(f"  receivers: {','.join(c.before) or '-'} -> {','.join(c.after) or '-'}")
        for u in c.added:
            click.echo(f"  + {u}")
        for u in c.removed:
            click.echo(f"  - {u}")
    changed = len(changes)
    click.echo(f"{changed} of {total} alerts change")
    sys.exit(1 if changed else 0)


@click.command("oncall")
@click.argument("schedule", required=False)
@routing_option
@at_option
def oncall(schedule: str | None, routing_path: str, at: str | None) -> None:
    """Who is on call now (or --at), and who is next."""
    table = load_or_exit(routing_path)
    now = parse_at(at)
    if schedule is not None and schedule not in table.schedules:
        raise click.BadParameter(f"no schedule {schedule!r}", param_hint="SCHEDULE")
    for name in [schedule] if schedule else sorted(table.schedules):
        s = table.schedules[name]
        click.echo(f"{name} ({s.tz})")
        for label, shift in zip(("now", "next"), s.shifts(now, 2), strict=False):
            userids = ",".join(table.resolve(shift.user)) or "no userid"
            kind = " (override)" if s.rotation_user(shift.start) != shift.user else ""
            until = _fmt(shift.end, s.tz) if shift.end else "-"
            click.echo(
                f"  {label:<4} {shift.user} [{userids}]{kind}  {_fmt(shift.start, s.tz)} → {until}"
            )


def _fmt(t: datetime, tz: tzinfo) -> str:
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %a")


COMMANDS = (check_config, routes, oncall)
