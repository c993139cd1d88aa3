"""The `dingtalk-receiver` command line: thin shells around the same loaders `serve` uses."""

from __future__ import annotations

import os
import shutil

import click

from .cli_outbox import outbox
from .logs import setup_logging
from .settings import Settings


@click.group()
@click.version_option(package_name="dingtalk-receiver")
def main() -> None:
    """Page people on DingTalk from Alertmanager and Grafana."""


@main.command()
@click.option("--listen", help="HOST:PORT to listen on [RECEIVER_LISTEN, default 127.0.0.1:8080]")
@click.option("--workers", type=int, help="gunicorn web workers [RECEIVER_WORKERS, default 2]")
def serve(listen: str | None, workers: int | None) -> None:
    """Run the web workers (gunicorn) and the delivery worker."""
    settings = Settings.from_env(listen=listen, workers=workers)
    # Before anything imports prometheus_client: every process (gunicorn workers and
    # the delivery worker, which inherits the environment) writes its own metric files.
    metrics_dir = os.path.join(os.path.abspath(settings.data_dir), "metrics")
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    from .errors import ConfigError
    from .routing import load_routing
    from .server import serve as run

    setup_logging()
    try:
        load_routing(settings.routing)
    except ConfigError as e:
        raise click.ClickException(f"invalid configuration:\n{e}") from None
    run(settings)


@main.command(hidden=True)
@click.option("--parent-pid", type=int, help="exit when this process is gone")
def deliver(parent_pid: int | None) -> None:
    """Run only the delivery worker (serve starts it for you)."""
    from .deliver import run_process

    run_process(Settings.from_env(), parent_pid=parent_pid)


main.add_command(outbox)
