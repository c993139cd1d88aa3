"""The `dingtalk-receiver` command: one module per command group, all on the core's loaders."""

from receiver.cli.main import main

__all__ = ["main"]
