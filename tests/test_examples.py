"""examples/: every config is valid for the tool that reads it, and they agree with each other.

docker-compose.yml can't run here (no Docker engine), so its pieces are checked one by
one: amtool for alertmanager.yml, our routing loader for routing.yaml, promtool for
prometheus.yml and the receiver's alert rules, and the compose file's mounts and names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from receiver.delivery.outbox import Outbox
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client
from receiver.routing import load_routing
from receiver.settings import Settings
from receiver.web.app import create_app
from receiver.web.server import auth_summary
from tests.conftest import FIXTURES, ROOT, plan_pending, require_binary
from tests.fakes.dingtalk import APP_KEY, APP_SECRET, FakeDingTalk
from tests.procs import ALERTMANAGER, alertmanager, http, serve

EXAMPLES = ROOT / "examples"
AMTOOL = "/usr/bin/amtool"
PROMTOOL = "/usr/bin/promtool"


def load(name: str) -> Any:
    return yaml.safe_load((EXAMPLES / name).read_text())


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=EXAMPLES, capture_output=True, text=True, timeout=60)


# -- each file, by the tool that reads it ----------------------------------------------------
def test_alertmanager_yml_passes_amtool() -> None:
    out = run(require_binary(AMTOOL), "check-config", "alertmanager.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_routing_example_loads() -> None:
    # TODO(issue 3): call `dingtalk-receiver check-config --routing examples/routing.yaml`
    # once it lands; it uses this same loader.
    table = load_routing(str(EXAMPLES / "routing.yaml"))
    # The sample alert and the receiver's own alerts reach the receivers meant for them.
    sample = load("sample-alerts.yml")["groups"][0]["rules"][0]["labels"]
    assert table.match({"alertname": "SampleDiskFull", **sample}) == ["db"]
    own = load("prometheus-rules.yml")["groups"][0]["rules"][0]["labels"]
    assert table.match({"alertname": "DingTalkReceiverDown", **own}) == ["receiver-self"]
    assert table.match({"alertname": "Other"}) == ["ops"]


def test_prometheus_config_and_rules_pass_promtool() -> None:
    promtool = require_binary(PROMTOOL)
    out = run(promtool, "check", "config", "prometheus.yml")  # also checks its rule_files
    assert out.returncode == 0, out.stdout + out.stderr
    out = run(promtool, "check", "rules", "prometheus-rules.yml")
    assert out.returncode == 0 and "SUCCESS: 10 rules found" in out.stdout, out.stdout + out.stderr


def test_receiver_rules_unit_tests_pass() -> None:
    out = run(require_binary(PROMTOOL), "test", "rules", "prometheus-rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_has_a_unit_test_or_is_trivial() -> None:
    rules = [r["alert"] for r in load("prometheus-rules.yml")["groups"][0]["rules"]]
    tested = {
        t["alertname"]
        for case in load("prometheus-rules.test.yml")["tests"]
        for t in case["alert_rule_test"]
    }
    assert set(rules) - tested == {"DingTalkReceiverDown"}  # `up == 0` needs no test


# -- the rules name metrics that exist --------------------------------------------------------
@pytest.fixture
def exposition(live_settings: Settings, fake_dingtalk: FakeDingTalk) -> str:
    """A real /metrics after every kind of traffic."""
    client = create_app(live_settings).test_client()
    body = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())
    for n in range(2):  # two alert groups: a newer one of the same group would replace it
        body["groupKey"] = f'{{}}:{{n="{n}"}}'
        client.post("/alertmanager", json=body)
    client.post("/-/reload")
    plan_pending(client.application)
    worker = Worker(Outbox(live_settings.data_dir), Client(live_settings))
    fake_dingtalk.fail("asyncsend_v2", times=1, body={"errcode": 60011, "errmsg": "no permission"})
    assert worker.run_once() == 2  # one dead, one sent
    return client.get("/metrics").get_data(as_text=True)


@pytest.fixture
def scraped(exposition: str) -> dict[str, set[str]]:
    """Sample name -> label names."""
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def rule_selectors() -> Iterator[tuple[str, str, set[str]]]:
    """(alert, metric, label names) for every dingtalk_receiver_* selector in the rules."""
    for rule in load("prometheus-rules.yml")["groups"][0]["rules"]:
        expr = rule["expr"]
        for m in re.finditer(r"\b(dingtalk_receiver_\w+)(\{[^}]*\})?", expr):
            labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", m.group(2) or ""))
            yield rule["alert"], m.group(1), labels
        for by in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            for label in by.split(","):
                assert label.strip() in {"job", "instance"}, (rule["alert"], label)


def test_rules_reference_metrics_that_exist(scraped: dict[str, set[str]]) -> None:
    selectors = list(rule_selectors())
    assert len({metric for _, metric, _ in selectors}) >= 6
    for alert, metric, labels in selectors:
        assert metric in scraped, f"{alert}: {metric} is not exported (see receiver/metrics.py)"
        assert labels <= scraped[metric], (
            f"{alert}: {metric} has no label {labels - scraped[metric]}"
        )


def test_operations_doc_lists_every_metric(exposition: str) -> None:
    doc = (ROOT / "docs/operations.md").read_text()
    table = doc[doc.index("| metric |") : doc.index("## Alerts on the receiver itself")]
    documented = set(re.findall(r"^\| `(dingtalk_receiver_\w+)`", table, re.MULTILINE))
    exported = {
        f.name + ("_total" if f.type == "counter" else "")
        for f in text_string_to_metric_families(exposition)
        if f.name.startswith("dingtalk_receiver_") and not f.name.endswith("_created")
    }
    assert documented == exported


def test_every_metric_the_docs_name_is_exported(exposition: str) -> None:
    """Prose too: a renamed metric cannot live on in a troubleshooting hint."""
    docs = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *EXAMPLES.glob("*.md")]
    named = {
        re.sub(r"_(bucket|count|sum)$", "", n)
        for d in docs
        for n in re.findall(r"dingtalk_receiver_\w+", d.read_text())
    }
    families = list(text_string_to_metric_families(exposition))
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    assert len(named) > 20
    assert named <= exported, sorted(named - exported)


# -- the compose file and the configs agree ---------------------------------------------------
def test_compose_mounts_and_names_agree() -> None:
    compose = load("docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"receiver", "alertmanager", "prometheus"}
    mounts: dict[str, dict[str, str]] = {}
    for name, service in services.items():
        mounts[name] = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (EXAMPLES / source).is_file(), f"{name} mounts missing {source}"
                mounts[name][target] = source
    for secret in compose["secrets"].values():
        assert (EXAMPLES / secret["file"]).is_file()

    receiver = services["receiver"]
    assert (EXAMPLES / receiver["build"]["context"] / receiver["build"]["dockerfile"]).is_file()
    assert "receiver-data:/data" in receiver["volumes"]
    assert mounts["receiver"][receiver["environment"]["RECEIVER_ROUTING"]] == "./routing.yaml"
    assert int(receiver["stop_grace_period"].rstrip("s")) > 20  # gunicorn's graceful_timeout
    assert receiver["environment"]["RECEIVER_WEBHOOK_TOKEN_FILE"] == "/run/secrets/webhook_token"
    assert receiver["secrets"] == ["webhook_token"]

    # Alertmanager: reads the mounted config, posts to the receiver service with the secret.
    am = services["alertmanager"]
    config_file = next(a.split("=", 1)[1] for a in am["command"] if a.startswith("--config.file="))
    assert mounts["alertmanager"][config_file] == "./alertmanager.yml"
    secrets = {f"/run/secrets/{s}" for s in am["secrets"]}
    for r in load("alertmanager.yml")["receivers"]:
        for hook in r["webhook_configs"]:
            assert re.fullmatch(r"http://receiver:8080/alertmanager(/[\w-]+)?", hook["url"])
            assert hook["http_config"]["authorization"]["credentials_file"] in secrets

    # Prometheus: its config, both rule files beside it, targets by service name.
    prom = services["prometheus"]
    config_file = prom["command"][0].split("=", 1)[1]
    assert mounts["prometheus"][config_file] == "./prometheus.yml"
    config = load("prometheus.yml")
    here = Path(config_file).parent
    for rule_file in config["rule_files"]:
        assert mounts["prometheus"][str(here / rule_file)] == f"./{rule_file}"
    am_targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am_targets == ["alertmanager:9093"]
    job = config["scrape_configs"][0]
    assert job["job_name"] == "dingtalk-receiver"  # the rules' `up{job=...}`
    assert job["static_configs"][0]["targets"] == ["receiver:8080"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RECEIVER_LISTEN=0.0.0.0:8080" in dockerfile and "EXPOSE 8080" in dockerfile


def test_the_docker_build_context_is_only_what_the_dockerfile_copies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {
        src.rstrip("/")
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for src in line.split()[1:-1]
    }
    lines = [x for x in (ROOT / ".dockerignore").read_text().splitlines() if x and x[0] != "#"]
    assert lines[0] == "*"  # everything out: .venv, data/ (tokens.sqlite3), .git, tests/
    allowed = {x[1:] for x in lines if x.startswith("!")}
    assert allowed == copied
    # routes diff's samples, when there is no tests/, come with the package
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"samples/*.json"' in pyproject


# -- the container fails closed: no token, no start -------------------------------------------
def _compose_env(token_file: Path) -> dict[str, str]:
    """The receiver's environment in the compose file, as `docker compose up` sets it."""
    env = dict(load("docker-compose.yml")["services"]["receiver"]["environment"])
    required = [k for k, v in env.items() if str(v).startswith("${") and ":?" in str(v)]
    env = {k: str(v) for k, v in env.items() if not str(v).startswith("${")}
    env.update({k: "0123456789abcdef" * 4 for k in required})  # what the user exported
    env["RECEIVER_WEBHOOK_TOKEN_FILE"] = str(token_file)
    return env


def test_the_compose_file_requires_what_the_receiver_requires() -> None:
    """RECEIVER_EXTERNAL_URL needs RECEIVER_SECRET_KEY: compose refuses to start without it
    (`${VAR:?message}`) rather than start a receiver that refuses to."""
    env = load("docker-compose.yml")["services"]["receiver"]["environment"]
    assert env["RECEIVER_EXTERNAL_URL"] and env["RECEIVER_SECRET_KEY"].startswith(
        "${RECEIVER_SECRET_KEY:?"
    )
    head = (EXAMPLES / "docker-compose.yml").read_text().split("services:")[0]
    assert "export RECEIVER_SECRET_KEY=" in head  # the set-up steps say so


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read it"),  # the secret's file is missing
        ("", "is empty"),
        ("\n", "is empty"),
        ((EXAMPLES / "webhook-token").read_text(), "placeholder"),  # as shipped
    ],
)
def test_the_compose_receiver_refuses_to_start_without_a_real_token(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    token_file = tmp_path / "webhook_token"
    if content is not None:
        token_file.write_text(content)
    env = {**os.environ, **_compose_env(token_file), "RECEIVER_DATA_DIR": str(tmp_path / "d")}
    env["RECEIVER_ROUTING"] = str(EXAMPLES / "routing.yaml")
    out = subprocess.run(
        [sys.executable, "-m", "receiver", "serve", "--listen", "127.0.0.1:1"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "RECEIVER_WEBHOOK_TOKEN" in out.stderr and expected in out.stderr, out.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_the_compose_receiver_reads_its_token_from_the_secret(tmp_path: Path) -> None:
    token_file = tmp_path / "webhook_token"
    token_file.write_text("3f9a" * 16 + "\n")
    settings = Settings.from_env(_compose_env(token_file))
    assert settings.webhook_token == "3f9a" * 16
    assert auth_summary(settings).startswith("auth webhooks=bearer token;")
    assert "none" in auth_summary(Settings())


# -- the example Alertmanager config really authenticates -------------------------------------
@pytest.mark.e2e
def test_example_alertmanager_config_delivers_with_bearer_auth(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    am_bin = require_binary(ALERTMANAGER)
    token = "example-token-3f9e"
    (tmp_path / "token").write_text(token + "\n")
    env = {
        "DINGTALK_APP_KEY": APP_KEY, "DINGTALK_APP_SECRET": APP_SECRET,
        "DINGTALK_APP_AGENT_ID": "424242", "DINGTALK_API_BASE": fake_dingtalk.url,
        "RECEIVER_DATA_DIR": str(tmp_path / "data"),
        "RECEIVER_ROUTING": str(EXAMPLES / "routing.yaml"),
        "RECEIVER_TEMPLATES": str(ROOT / "templates"), "RECEIVER_WEBHOOK_TOKEN": token,
    }  # fmt: skip
    with serve(env, tmp_path / "serve.log", workers=1) as srv:
        config = (EXAMPLES / "alertmanager.yml").read_text()
        config = config.replace("http://receiver:8080", srv.url)
        config = config.replace("/run/secrets/webhook_token", str(tmp_path / "token"))
        config = re.sub(r"group_wait: \S+", "group_wait: 1s", config)
        with alertmanager(am_bin, "", tmp_path, config=config) as am:
            start = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            alerts = [
                {"labels": {"alertname": "DiskFull", "team": "db"}, "startsAt": start,
                 "annotations": {"summary": "db alert via /alertmanager/db"}},
                {"labels": {"alertname": "Other", "team": "web"}, "startsAt": start,
                 "annotations": {"summary": "web alert via /alertmanager"}},
            ]  # fmt: skip
            assert http("POST", am + "/api/v2/alerts", alerts)[0] == 200
            assert fake_dingtalk.wait_for(lambda f: len(f.sends()) >= 2, 30), srv.text()
    to = {json.dumps(s.body["msg"], ensure_ascii=False): s.body["userid_list"]
          for s in fake_dingtalk.sends() if s.body}  # fmt: skip
    assert sorted(to.values()) == ["manager4220", "user0002"]  # routing.yaml: ops=alice, db=bob
    assert next(u for m, u in to.items() if "db alert" in m) == "user0002"
    log = srv.text()
    assert "path=/alertmanager/db status=200" in log and "path=/alertmanager status=200" in log
    assert "status=401" not in log


def test_grafana_provisioning_example_targets_a_real_endpoint(settings: Settings) -> None:
    text = (EXAMPLES / "grafana.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert block, "examples/grafana.md has no yaml block"
    doc = yaml.safe_load(block.group(1))
    receiver = doc["contactPoints"][0]["receivers"][0]
    hook = receiver["settings"]
    assert receiver["type"] == "webhook" and hook["httpMethod"] == "POST"
    assert hook["authorization_scheme"] == "Bearer"
    assert hook["authorization_credentials"] == "$__file{/run/secrets/webhook_token}"
    path = hook["url"].removeprefix("http://receiver:8080")
    app = create_app(settings.with_(routing=str(EXAMPLES / "routing.yaml")))
    assert any(
        rule.rule == path and "POST" in (rule.methods or ()) for rule in app.url_map.iter_rules()
    )
    for url in re.findall(r"`(http://receiver:8080/grafana[^`]*)`", text):
        receiver_name = url.removeprefix("http://receiver:8080/grafana").strip("/")
        assert (
            not receiver_name
            or receiver_name in load_routing(str(EXAMPLES / "routing.yaml")).receivers
        )
