"""The `dingtalk-receiver` command line."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Page people on DingTalk from Alertmanager and Grafana."""


from .cli_routing import COMMANDS as _ROUTING_COMMANDS  # noqa: E402

for _command in _ROUTING_COMMANDS:
    main.add_command(_command)
