"""The README is the manual: its sections, settings and commands are checked here."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry
from receiver.settings import Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTIONS = [
    "Quick start", "DingTalk app set-up", "How it works", "Configuration", "routing.yaml",
    "Templates", "Alertmanager set-up", "Grafana set-up", "The directory", "CLI", "Web console",
    "Operations",
    "Troubleshooting", "Development",
]  # fmt: skip


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_every_section_is_there_in_order() -> None:
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings == SECTIONS


def test_quick_start_is_the_two_commands() -> None:
    first = code_blocks("sh")[0].splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make run", "make test"]
    ci = (ROOT / ".ci/run").read_text()
    assert "RECEIVER_REQUIRE_E2E=1 make test" in ci


def test_every_setting_is_documented() -> None:
    source = (ROOT / "receiver/settings.py").read_text()
    names = set(re.findall(r'"((?:DINGTALK|RECEIVER)_[A-Z_]+)"', source))
    assert names, "no settings found"
    missing = {n for n in names if f"`{n}`" not in README}
    assert not missing


def test_every_command_is_documented() -> None:
    for name, command in main.commands.items():
        if not command.hidden:
            assert f"`{name}" in README, name


# These need DingTalk, a synced directory or a second routing file; their own test
# files run them (test_cli_directory.py, test_cli_send.py, test_cli_routing.py).
ELSEWHERE = ("sync-users", "users find", "routes diff", "send-test")


def cli_examples() -> list[str]:
    lines = [line for block in code_blocks("sh") for line in block.splitlines()]
    return [
        line
        for line in lines
        if line.startswith("dingtalk-receiver ")
        and "…" not in line
        and not any(line.startswith(f"dingtalk-receiver {e}") for e in ELSEWHERE)
    ]


SHELL_BUILTINS = {".", "export", "cd"}
NOT_HERE = {"docker"}  # no Docker engine on the test machine


def shell_commands() -> list[tuple[str, str]]:
    """(first word, line) of every command in the README's sh blocks, in order."""
    out = []
    for block in code_blocks("sh"):
        lines = block.splitlines()
        for n, line in enumerate(lines):
            if n and lines[n - 1].rstrip().endswith("\\"):
                continue  # a continuation, not a command
            words = line.split("#")[0].split()  # first words only: no quoting to mind
            if words:
                out.append((words[0], line))
    return out


def test_the_readme_commands_run_as_written_after_the_quick_start() -> None:
    """Each first word is a shell builtin or on PATH once .venv is activated, as the
    quick start says; the activation comes before the first bare dingtalk-receiver."""
    commands = shell_commands()
    activate = commands.index((".", next(line for w, line in commands if w == ".")))
    assert commands[activate][1].split("#")[0].split() == [".", ".venv/bin/activate"]
    path = os.pathsep.join([str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")])
    for n, (word, line) in enumerate(commands):
        if word == "dingtalk-receiver":
            assert n > activate, f"{line!r} runs before the README activates .venv"
        if word in SHELL_BUILTINS | NOT_HERE:
            continue
        assert shutil.which(word, path=path), f"{word!r} is not on PATH: {line!r}"
        assert not word.startswith(".venv/"), f"one form everywhere: {line!r}"


def test_enough_examples_are_run() -> None:
    assert len(cli_examples()) >= 8


@pytest.mark.parametrize("line", cli_examples())
def test_cli_examples_run(line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = shlex.split(line)[1:]
    if argv[0] == "outbox":  # the examples name item 42
        msg = {"msgtype": "text", "text": {"content": "x"}}
        entries = [Entry(receiver="ops", msg=msg, userids=(f"u{i}",)) for i in range(42)]
        Outbox(str(tmp_path)).enqueue(entries, source="alertmanager", group_key="g")
    monkeypatch.chdir(ROOT)
    env = {"RECEIVER_DATA_DIR": str(tmp_path), "RECEIVER_ROUTING": None, "DINGTALK_APP_KEY": None}
    result = CliRunner(env=env).invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_readme_payload_error_example_is_real(settings: Settings) -> None:
    from receiver.web.app import create_app

    example = re.search(r'\{"error": "(\$\.alerts\[0\][^"]+)"\}', README)
    assert example
    body = (ROOT / "tests/fixtures/alertmanager/firing-1.json").read_text()
    body = body.replace('"severity":"critical"', '"severity":5')
    res = (
        create_app(settings)
        .test_client()
        .post("/alertmanager", data=body, content_type="application/json")
    )
    assert res.status_code == 400 and res.json == {"error": example.group(1)}
