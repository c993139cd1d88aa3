"""The `dingtalk-receiver` command line: thin shells around the same loaders `serve` uses."""

from __future__ import annotations

import os
import shutil
from typing import Any

import click

from receiver.logs import setup_logging
from receiver.settings import Settings


@click.group()
@click.version_option(package_name="dingtalk-receiver")
def main() -> None:
    """Page people on DingTalk from Alertmanager and Grafana."""


def _settings(*, quiet: bool = False, **overrides: Any) -> Settings:
    try:
        settings = Settings.from_env(**overrides)
    except ValueError as e:  # a malformed variable: say which, not a traceback
        raise click.ClickException(str(e)) from None
    if not quiet:  # the delivery process that serve starts has said it already
        for line in settings.unknown:
            click.echo(f"Warning: {line}", err=True)
    return settings


@main.command()
@click.option("--listen", help="HOST:PORT to listen on [RECEIVER_LISTEN, default 127.0.0.1:8080]")
@click.option("--workers", type=int, help="gunicorn web workers [RECEIVER_WORKERS, default 2]")
def serve(listen: str | None, workers: int | None) -> None:
    """Run the web workers (gunicorn) and the delivery worker."""
    settings = _settings(listen=listen, workers=workers)
    from receiver.web.preflight import PreflightError, check_bind, lock_data_dir

    # Nothing in the data dir is touched before the port is known to bind and the data
    # dir is ours: a second serve must not empty the first one's metrics.
    try:
        check_bind(settings.listen, settings.listen_from)
        lock = lock_data_dir(settings.data_dir)
    except PreflightError as e:
        raise click.ClickException(str(e)) from None
    # Before anything imports prometheus_client: every process (gunicorn workers and
    # the delivery worker, which inherits the environment) writes its own metric files.
    metrics_dir = os.path.join(os.path.abspath(settings.data_dir), "metrics")
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    from receiver.delivery.configcheck import check_templates
    from receiver.directory.pg import open_store
    from receiver.errors import ConfigError
    from receiver.routing import load_routing
    from receiver.web.server import serve as run

    setup_logging()
    try:
        table = load_routing(settings.routing, open_store(settings.data_dir, settings.database_url))
    except ConfigError as e:
        raise click.ClickException(f"invalid configuration:\n{e}") from None
    checked = check_templates(table, settings.templates)  # what check-config checks
    if checked.errors:
        problems = "\n".join(map(str, checked.errors))
        raise click.ClickException(f"invalid configuration:\n{problems}")
    for p in checked.warnings:
        click.echo(f"Warning: {p}", err=True)
    run(settings)
    lock.close()


@main.command("send-test")
@click.option("--to", "userids", help="DingTalk userid(s), comma-separated")
@click.option("--robot", help="A robot under routing.yaml's robots: post to its group instead")
@click.option("--text", default="dingtalk-receiver test message", show_default=True)
def send_test(userids: str | None, robot: str | None, text: str) -> None:
    """Send one real work notification (--to), or one group robot post (--robot), now."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from receiver.dingtalk.client import Client
    from receiver.errors import DingTalkError

    if (userids is None) == (robot is None):
        raise click.UsageError("give --to USERID or --robot NAME")
    settings = _settings()
    # The time makes the content unique: DingTalk drops identical content sent twice a day
    # (to the millisecond: two tries in one second are two messages).
    now = datetime.now(ZoneInfo(settings.timezone))
    content = f"{text}\n{now.isoformat(sep=' ', timespec='milliseconds')}"
    if robot is not None:
        from receiver.cli.robots import post_test

        post_test(settings, robot, content)
        return
    if settings.dry_run:
        raise click.ClickException(
            f"{settings.missing_credentials()}: DINGTALK_APP_KEY, DINGTALK_APP_SECRET and"
            " DINGTALK_APP_AGENT_ID must all be set"
        )
    msg = {"msgtype": "text", "text": {"content": content}}
    try:
        results = Client(settings).async_send([u for u in (userids or "").split(",") if u], msg)
    except DingTalkError as e:
        raise click.ClickException(str(e)) from None
    for r in results:
        click.echo(f"sent: task_id={r.task_id} request_id={r.request_id} to={','.join(r.userids)}")


@main.command(hidden=True)
@click.option("--parent-pid", type=int, help="exit when this process is gone")
@click.option("--process", type=int, default=0, help="which of RECEIVER_DELIVERY_PROCESSES")
def deliver(parent_pid: int | None, process: int) -> None:
    """Run only the delivery worker (serve starts it for you)."""
    from receiver.delivery.process import run_process

    settings = _settings(quiet=True)
    if not 0 <= process < settings.delivery_processes:
        raise click.BadParameter(
            f"{process}: RECEIVER_DELIVERY_PROCESSES={settings.delivery_processes} runs"
            f" processes 0..{settings.delivery_processes - 1}",
            param_hint="--process",
        )
    run_process(settings, parent_pid=parent_pid, process=process)


# Each stage's module owns its commands; they import no prometheus_client, so
# `serve` can still point it at the multiprocess folder before it is first imported.
from receiver.cli.db import db  # noqa: E402
from receiver.cli.directory import COMMANDS as _DIRECTORY_COMMANDS  # noqa: E402
from receiver.cli.escalation import COMMANDS as _ESCALATION_COMMANDS  # noqa: E402
from receiver.cli.outbox import outbox  # noqa: E402
from receiver.cli.render import render_command  # noqa: E402
from receiver.cli.routing import COMMANDS as _ROUTING_COMMANDS  # noqa: E402

for _command in (*_ROUTING_COMMANDS, *_DIRECTORY_COMMANDS, render_command, outbox, db,
                 *_ESCALATION_COMMANDS):  # fmt: skip
    main.add_command(_command)
