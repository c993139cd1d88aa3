"""The `dingtalk-receiver` command line."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Page people on DingTalk from Alertmanager and Grafana."""
