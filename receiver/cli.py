"""The `dingtalk-receiver` command line."""

from __future__ import annotations

import click

from .cli_render import render_command


@click.group()
def main() -> None:
    """Page people on DingTalk from Alertmanager and Grafana."""


main.add_command(render_command)
