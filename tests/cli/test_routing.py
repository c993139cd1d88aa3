"""check-config, routes test, routes diff and oncall: exit codes and what the user sees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from tests.procs import free_port, serve

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = str(ROOT / "routing.yaml")
TEMPLATES = str(ROOT / "templates")
SAMPLE = str(ROOT / "tests/fixtures/alertmanager/firing-1.json")

SMALL = """\
users: {alice: u-alice, bob: u-bob}
schedules:
  db:
    timezone: Asia/Shanghai
    rotation: weekly
    handoff: "Mon 10:00"
    start: 2026-11-30
    members: [alice, bob]
    overrides: [{user: bob, from: "2026-12-02T00:00", to: "2026-12-03T00:00"}]
receivers:
  - {name: ops, users: [alice]}
  - {name: db, schedules: [db], departments: [42]}
route:
  receiver: ops
  routes:
    - {matchers: ['team="db"'], receiver: db, continue: true}
    - {matchers: ['severity="critical"'], receiver: ops}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def small(tmp_path: Path) -> str:
    path = tmp_path / "routing.yaml"
    path.write_text(SMALL)
    return str(path)


def test_check_config_passes_on_bundled(runner: CliRunner) -> None:
    r = runner.invoke(main, ["check-config", "--routing", BUNDLED, "--templates", TEMPLATES])
    assert r.exit_code == 0, r.output
    assert "OK" in r.stdout
    assert "warning: alias 'erin' needs the synced directory" in r.stderr


def test_check_config_reports_every_problem(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "receivers:\n  - name: a\n    template: nope.md.j2\n  - {name: b, bogus: 1}\n"
        "route:\n  receiver: c\n"
    )
    r = runner.invoke(main, ["check-config", "--routing", str(path), "--templates", TEMPLATES])
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        f"{path}:4: unknown key 'bogus' in a receiver (known: name, users, departments, "
        "schedules, template, msgtype, send_resolved, robots, escalation, notify_ack)",
        f"{path}:6: undefined receiver 'c'",
    ]


def test_check_config_missing_template_points_at_template_key(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("receivers:\n  - name: a\n    template: nope.md.j2\nroute: {receiver: a}\n")
    r = runner.invoke(main, ["check-config", "--routing", str(path), "--templates", TEMPLATES])
    assert r.exit_code == 1
    assert r.stderr.strip() == f"{path}:3: template 'nope.md.j2' not found in {TEMPLATES}"


def test_routes_test_json(runner: CliRunner, small: str) -> None:
    args = ["routes", "test", "--routing", small, "--json", "--at", "2026-12-02T12:00+08:00"]
    r = runner.invoke(main, [*args, "team=db", 'severity="critical"'])
    assert r.exit_code == 0, r.output
    # Bob is on call through the override; Alice through ops. Each once.
    doc = json.loads(r.stdout)
    assert {k: doc[k] for k in ("receivers", "userids", "departments")} == {
        "receivers": ["db", "ops"],
        "userids": ["u-bob", "u-alice"],
        "departments": [42],
    }
    assert [p["receiver"] for p in doc["recipients"]] == ["db", "ops"]


def test_routes_test_text_and_tree(runner: CliRunner, small: str) -> None:
    args = ["routes", "test", "--routing", small, "--tree", "--at", "2026-12-01T12:00+08:00"]
    r = runner.invoke(main, [*args, "team=db"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "Routing tree:"
    assert lines[1] == "└── default-route  receiver: ops"
    assert "db" in lines
    assert "  db: userids u-alice; departments 42; db on call: alice" in lines
    assert "userids: u-alice" in lines


@pytest.mark.parametrize(("expected", "code"), [("db,ops", 0), ("ops,db", 1), ("db", 1)])
def test_routes_test_verify_receivers(
    runner: CliRunner, small: str, expected: str, code: int
) -> None:
    args = ["routes", "test", "--routing", small, "--verify-receivers", expected]
    r = runner.invoke(main, [*args, "team=db", "severity=critical"])
    assert r.exit_code == code
    assert ("did not match" in r.stderr) is bool(code)


def test_routes_test_bad_label(runner: CliRunner, small: str) -> None:
    r = runner.invoke(main, ["routes", "test", "--routing", small, "team=~db"])
    assert r.exit_code == 2
    assert "use LABEL=VALUE" in r.output


def test_routes_diff(runner: CliRunner, small: str, tmp_path: Path) -> None:
    new = tmp_path / "new.yaml"
    new.write_text(SMALL.replace("receiver: db, continue: true", "receiver: db"))
    args = ["routes", "diff", small, str(new), "--payload", SAMPLE, "--at", "2026-12-01T12:00Z"]
    r = runner.invoke(main, args)
    assert r.exit_code == 1, r.output
    assert r.stdout.splitlines() == [
        "firing-1.json: {alertname=HighLatency,instance=api-1:9100,job=api,"
        "severity=critical,team=db}",
        "  receivers: db,ops -> db",
        "1 of 1 alerts change",
    ]
    same = runner.invoke(main, ["routes", "diff", small, small, "--payload", SAMPLE])
    assert same.exit_code == 0
    assert same.stdout.strip() == "0 of 1 alerts change"


def test_routes_diff_without_tests_uses_the_installed_samples(
    runner: CliRunner, small: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the Docker image: no tests/ beside it, no --payload."""
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(main, ["routes", "diff", small, small])
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith("no --payload: the bundled samples in ")
    assert r.stderr.rstrip().endswith("receiver/web/console/samples")
    assert r.stdout.strip().startswith("0 of ") and not r.stdout.startswith("0 of 0")
    monkeypatch.chdir(ROOT)  # in a checkout: the test fixtures
    r = runner.invoke(main, ["routes", "diff", small, small])
    assert r.stderr.strip() == "no --payload: the bundled samples in tests/fixtures/alertmanager"


def test_oncall(runner: CliRunner, small: str) -> None:
    r = runner.invoke(main, ["oncall", "db", "--routing", small, "--at", "2026-12-01T12:00+08:00"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "db (Asia/Shanghai)",
        "  now  alice [u-alice]  2026-11-30 10:00 Mon → 2026-12-02 00:00 Wed",
        "  next bob [u-bob] (override)  2026-12-02 00:00 Wed → 2026-12-03 00:00 Thu",
    ]
    missing = runner.invoke(main, ["oncall", "nope", "--routing", small])
    assert missing.exit_code == 2


def test_check_config_reports_a_template_syntax_error_at_its_line(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "default.md.j2").write_text(  # used by every markdown receiver
        "### {{ title }}\n{% for a in alerts %}\n{{ a.labels | md }\n"
    )
    result = CliRunner().invoke(
        main,
        ["check-config", "--routing", str(ROOT / "routing.yaml"), "--templates", str(templates)],
    )
    assert result.exit_code == 1
    assert f"{templates / 'default.md.j2'}:3: " in result.output


def test_check_config_reports_a_template_that_is_not_utf8(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "default.md.j2").write_bytes(b"### {{ title }}\n\n" + "值班".encode("gbk"))
    result = CliRunner().invoke(
        main,
        ["check-config", "--routing", str(ROOT / "routing.yaml"), "--templates", str(templates)],
    )
    assert result.exit_code == 1, result.output
    assert f"{templates / 'default.md.j2'}:3: " in result.output and "UTF-8" in result.output


def serve_refusal(
    routing: Path, templates: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RECEIVER_ROUTING": str(routing),
        "RECEIVER_TEMPLATES": str(templates),
        "RECEIVER_DATA_DIR": str(tmp_path / "data"),
        "RECEIVER_LISTEN": f"127.0.0.1:{free_port()}",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        return subprocess.run([sys.executable, "-m", "receiver", "serve"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=20)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("serve started where check-config fails")


def test_serve_refuses_a_missing_template_as_check_config_does(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("receivers:\n  - name: a\n    template: nope.md.j2\nroute: {receiver: a}\n")
    expected = f"{path}:3: template 'nope.md.j2' not found in {TEMPLATES}"
    check = CliRunner().invoke(
        main, ["check-config", "--routing", str(path), "--templates", TEMPLATES]
    )
    assert check.exit_code == 1 and expected in check.stderr
    out = serve_refusal(path, Path(TEMPLATES), tmp_path)
    assert out.returncode == 1 and expected in out.stderr, out.stderr


def test_a_broken_template_nothing_uses_is_a_warning_in_both(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "old.md.j2").write_text("{% for a in alerts %}\n")  # used by no receiver
    (templates / "part.md.j2").write_text("{{ broken }\n")  # included by one that is used
    (templates / "db.md.j2").write_text("{% include 'part.md.j2' %}\n")
    routing = tmp_path / "routing.yaml"
    routing.write_text("receivers:\n  - name: a\n    template: db.md.j2\nroute: {receiver: a}\n")
    check = CliRunner().invoke(
        main, ["check-config", "--routing", str(routing), "--templates", str(templates)]
    )
    assert check.exit_code == 1, check.output  # part.md.j2 is reached through the include
    assert f"{templates / 'part.md.j2'}:1: " in check.stderr
    assert "no receiver uses this template: fix or remove it" in check.stderr  # old.md.j2
    (templates / "part.md.j2").write_text("{{ fixed }}\n")
    check = CliRunner().invoke(
        main, ["check-config", "--routing", str(routing), "--templates", str(templates)]
    )
    assert check.exit_code == 0, check.output
    assert f"{templates / 'old.md.j2'}:1: " in check.stderr and " 1 warnings)" in check.stdout
    env = {"RECEIVER_ROUTING": str(routing), "RECEIVER_TEMPLATES": str(templates),
           "RECEIVER_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    with serve(env, tmp_path / "serve.log", workers=1) as srv:
        assert f"Warning: {templates / 'old.md.j2'}:1: " in srv.text()


def test_check_config_says_a_running_serve_keeps_the_last_good_table(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "routing.last-good.yaml").write_text(SMALL)
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(data))
    path = tmp_path / "routing.yaml"
    monkeypatch.setenv("RECEIVER_ROUTING", str(path))  # the file serve reads
    path.write_text(SMALL.replace("receiver: db,", "receiver: nobody,"))
    r = runner.invoke(main, ["check-config", "--routing", str(path), "--templates", TEMPLATES])
    assert r.exit_code == 1
    assert "undefined receiver 'nobody'" in r.stderr
    assert f"{path} is refused: a running serve keeps the table it loaded before" in r.stdout
    assert str(data / "routing.last-good.yaml") in r.stdout
    # Another file than the one serve reads is only checked: serve keeps nothing of it.
    other = tmp_path / "draft.yaml"
    other.write_text(path.read_text())
    r = runner.invoke(main, ["check-config", "--routing", str(other), "--templates", TEMPLATES])
    assert r.exit_code == 1 and "undefined receiver 'nobody'" in r.stderr
    assert "running serve" not in r.stdout
