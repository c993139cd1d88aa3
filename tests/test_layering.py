"""The design's layering: the pure core imports no Flask, sqlite3 or dingtalk-sdk, and only
receiver/dingtalk.py imports dingtalk-sdk."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PURE = ["ingest", "ingest_grafana", "routing", "config", "schedule", "render", "pipeline"]


@pytest.mark.parametrize("module", PURE)
def test_pure_core_imports_no_io_stack(module: str) -> None:
    code = (
        f"import sys, receiver.{module}; "
        "print(sorted(m for m in ('flask', 'sqlite3', 'dingtalk', 'requests', 'gunicorn')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_only_the_client_module_imports_dingtalk_sdk() -> None:
    importers = set()
    for path in (ROOT / "receiver").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n == "dingtalk" or n.startswith("dingtalk.") for n in names):
                importers.add(path.name)
    assert importers == {"dingtalk.py"}
