"""End to end: real Alertmanager -> real `serve` (gunicorn) -> fake DingTalk, on loopback."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.delivery.outbox import Outbox
from receiver.routing import load_routing
from receiver.settings import Settings
from tests.conftest import ROOT, SIMPLE_ROUTING, env_for, require_binary
from tests.fakes.dingtalk import APP_KEY, APP_SECRET, FakeDingTalk
from tests.procs import (
    ALERTMANAGER,
    alertmanager,
    descendants,
    http,
    is_delivery,
    serve,
    wait_for_log,
)

pytestmark = pytest.mark.e2e


def receiver_env(tmp_path: Path, fake: FakeDingTalk) -> dict[str, str]:
    """Credentials pointed at the fake, the fixed test routing, a private data dir."""
    settings = Settings(data_dir=str(tmp_path / "data"), routing=str(SIMPLE_ROUTING),
                        templates=str(ROOT / "templates"), app_key=APP_KEY,
                        app_secret=APP_SECRET, agent_id="424242", api_base=fake.url)  # fmt: skip
    return env_for(settings)


def test_alert_reaches_a_person_then_resolves(tmp_path: Path, fake_dingtalk: FakeDingTalk) -> None:
    am_bin = require_binary(ALERTMANAGER)
    labels = {"alertname": "DiskFull", "team": "db", "severity": "critical", "instance": "db-1"}
    summary = "磁盘 /var/lib/mysql 使用率 97%"
    with serve(receiver_env(tmp_path, fake_dingtalk), tmp_path / "serve.log") as srv:
        with alertmanager(am_bin, srv.url + "/alertmanager", tmp_path) as am:
            start = datetime.now(UTC) - timedelta(minutes=1)
            alert = {
                "labels": labels,
                "annotations": {"summary": summary},
                "startsAt": start.isoformat(),
            }
            status, _ = http("POST", am + "/api/v2/alerts", [alert])
            assert status == 200

            def texts(f: FakeDingTalk) -> list[str]:
                return [str(r.body) for r in f.sends() if r.body]

            assert fake_dingtalk.wait_for(lambda f: any(summary in t for t in texts(f)), 30), (
                srv.text()
            )
            first = fake_dingtalk.sends()[0].body
            assert first is not None
            assert first["agent_id"] == 424242
            # routing.yaml: team=db & severity=critical -> receiver db -> bob -> user0002
            assert first["userid_list"] == "user0002"
            assert first["msg"]["msgtype"] == "markdown"
            assert first["msg"]["markdown"]["title"] == "[告警:1] DiskFull"

            alert["endsAt"] = datetime.now(UTC).isoformat()
            assert http("POST", am + "/api/v2/alerts", [alert])[0] == 200
            assert fake_dingtalk.wait_for(
                lambda f: any("[已恢复] DiskFull" in t and summary in t for t in texts(f)), 30
            ), srv.text()
    assert "sent id=" in srv.text()


def test_quick_start_dry_run_logs_the_message_and_keeps_it(tmp_path: Path) -> None:
    """The README quick start: the bundled routing.yaml, no credentials, a fixture posted."""
    env = {"RECEIVER_DATA_DIR": str(tmp_path / "data"), "DINGTALK_APP_KEY": ""}
    for name in ("RECEIVER_ROUTING", "RECEIVER_TEMPLATES"):
        env[name] = ""  # the defaults, relative to the checkout, as `make run` uses them
    payload = (ROOT / "tests/fixtures/alertmanager/firing-1.json").read_bytes()
    table = load_routing(str(ROOT / "routing.yaml"))
    with serve(env, tmp_path / "serve.log", workers=1, cwd=ROOT) as srv:
        before = datetime.now(UTC)
        status, body = http("POST", srv.url + "/alertmanager", payload)
        assert (status, body) == (200, {"status": "accepted", "id": 1, "alerts": 1})
        wait_for_log(srv, "dry_run_stored id=1 receiver=db")
        after = datetime.now(UTC)
    assert "messages are logged and stored in the outbox, not sent" in srv.text()
    assert "\nAPI p99 latency above 2s" in srv.text()  # the message as lines, not a dict
    (item,) = Outbox(str(tmp_path / "data")).items()
    # team=db, severity=critical: the db receiver, whoever is on call for db-primary
    # (either side of a handoff that falls between the post and the send).
    oncall = {table.recipients("db", t).userids for t in (before, after)}
    assert item.userids in oncall and "API p99 latency above 2s" in str(item.msg)
    assert f"dry_run to={','.join(item.userids)} depts=[12345]" in srv.text()
    assert item.state == "dry_run"


def metric(text: str, name: str) -> float:
    """Sum of every sample of `name` (all label sets) in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_add_up_across_workers(tmp_path: Path, fake_dingtalk: FakeDingTalk) -> None:
    payload = json.loads((ROOT / "tests/fixtures/alertmanager/firing-1.json").read_text())
    with serve(receiver_env(tmp_path, fake_dingtalk), tmp_path / "serve.log", workers=3) as srv:
        for n in range(12):  # twelve alert groups: a newer one of a group would replace it
            payload["groupKey"] = f'{{}}:{{n="{n}"}}'
            assert http("POST", srv.url + "/alertmanager", payload)[0] == 200
        assert http("POST", srv.url + "/alertmanager", b"{")[0] == 400
        assert fake_dingtalk.wait_for(lambda f: len(f.sends()) == 12, 30)
        # Whichever worker answers the scrape, the totals are the same.
        for _ in range(6):
            status, text = http("GET", srv.url + "/metrics")
            assert status == 200
            assert metric(text, "dingtalk_receiver_payloads_received_total") == 13
            assert 'outcome="invalid",source="alertmanager"} 1.0' in text
            assert metric(text, "dingtalk_receiver_alerts_received_total") == 12
            assert metric(text, "dingtalk_receiver_messages_enqueued_total") == 12
        deadline = time.monotonic() + 10
        while metric(text, "dingtalk_receiver_sends_total") < 12 and time.monotonic() < deadline:
            time.sleep(0.2)
            text = http("GET", srv.url + "/metrics")[1]
        assert 'dingtalk_receiver_sends_total{errclass="",outcome="sent"} 12.0' in text
        assert 'dingtalk_receiver_outbox_items{state="sent"} 12.0' in text
        assert metric(text, "dingtalk_receiver_token_refreshes_total") == 1


def test_a_killed_delivery_process_is_restarted(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    payload = (ROOT / "tests/fixtures/alertmanager/firing-1.json").read_bytes()
    with serve(receiver_env(tmp_path, fake_dingtalk), tmp_path / "serve.log", workers=1) as srv:
        wait_for_log(srv, "delivery_started")
        (pid,) = [p for p in descendants(srv.proc.pid) if is_delivery(p)]
        os.kill(pid, signal.SIGKILL)
        wait_for_log(srv, f"delivery_process_died pid={pid} process=0; restarting")
        assert http("POST", srv.url + "/alertmanager", payload)[0] == 200
        assert fake_dingtalk.wait_for(lambda f: len(f.sends()) == 1, 20), srv.text()


def test_serve_syncs_the_directory_and_routes_by_mobile(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    """With credentials, serve syncs the directory itself; an alias by mobile then resolves."""
    from tests.fakes import directory as people

    fake_dingtalk.directory = people.company()
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "users:\n  alice: {mobile: '13800000001'}\n"
        "receivers:\n  - name: ops\n    users: [alice]\nroute:\n  receiver: ops\n"
    )
    env = {**receiver_env(tmp_path, fake_dingtalk), "RECEIVER_ROUTING": str(routing)}
    payload = (ROOT / "tests/fixtures/alertmanager/firing-1.json").read_bytes()
    with serve(env, tmp_path / "serve.log", workers=1) as srv:
        wait_for_log(srv, "directory_synced")
        assert http("POST", srv.url + "/alertmanager", payload)[0] == 200
        assert fake_dingtalk.wait_for(lambda f: len(f.sends()) == 1, 20), srv.text()
    body = fake_dingtalk.sends()[0].body
    assert body is not None and body["userid_list"] == "manager4220"
