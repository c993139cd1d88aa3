"""Escalation end to end: real Alertmanager -> real `serve` -> fake DingTalk, on loopback.

An unacknowledged group reaches the policy's second step; a group acknowledged from
its link does not escalate at all; a step that falls due while serve is killed (-9)
is sent exactly once after the restart.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.settings import Settings
from tests.conftest import ROOT, env_for, require_binary
from tests.fakes.dingtalk import APP_KEY, APP_SECRET, FakeDingTalk, Request
from tests.procs import ALERTMANAGER, alertmanager, http, serve, wait_for_log

pytestmark = pytest.mark.e2e

ROUTING = """\
users: {bob: u-bob, carol: u-carol, dave: u-dave}
escalation_policies:
  pager:
    steps:
      - {after: STEP1, notify: {users: [carol]}}
      - {after: 2s, notify: {users: [dave]}}
receivers:
  - name: db
    users: [bob]
    escalation: pager
route:
  receiver: db
"""
TOKEN = re.compile(r"https://rx\.example/ack/([A-Za-z0-9_.-]+)")


def env(tmp_path: Path, fake: FakeDingTalk, step1: str) -> dict[str, str]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.replace("STEP1", step1))
    settings = Settings(data_dir=str(tmp_path / "data"), routing=str(routing),
                        templates=str(ROOT / "templates"), app_key=APP_KEY,
                        app_secret=APP_SECRET, agent_id="424242", api_base=fake.url)  # fmt: skip
    return env_for(settings, RECEIVER_EXTERNAL_URL="https://rx.example",
                   RECEIVER_SECRET_KEY="e2e-secret")  # fmt: skip


def to(f: FakeDingTalk, userid: str, text: str = "") -> list[Request]:
    return [
        r for r in f.delivered()
        if r.body and r.body.get("userid_list") == userid and text in json.dumps(
            r.body, ensure_ascii=False)
    ]  # fmt: skip


def test_unacknowledged_reaches_step_two_and_acknowledged_does_not(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    am_bin = require_binary(ALERTMANAGER)
    with serve(env(tmp_path, fake_dingtalk, "5s"), tmp_path / "serve.log", workers=1) as srv:
        with alertmanager(am_bin, srv.url + "/alertmanager", tmp_path) as am:
            start = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            alerts = [
                {"labels": {"alertname": name, "severity": "critical"},
                 "annotations": {"summary": f"{name} summary"}, "startsAt": start}
                for name in ("Ignored", "Taken")
            ]  # fmt: skip
            assert http("POST", am + "/api/v2/alerts", alerts)[0] == 200
            f = fake_dingtalk
            assert f.wait_for(lambda f: len(to(f, "u-bob", "Taken summary")) >= 1, 30), srv.text()
            body = json.dumps(to(f, "u-bob", "Taken summary")[0].body, ensure_ascii=False)
            token = TOKEN.search(body)
            assert token, body
            status, _ = http("POST", f"{srv.url}/ack/{token.group(1)}", b"action=ack",
                             {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            assert status == 200
            # the ignored group: step 1 to carol, then step 2 to dave
            assert f.wait_for(lambda f: len(to(f, "u-dave", "Ignored summary")) == 1, 40), (
                srv.text()
            )
            (step1,) = to(f, "u-carol", "Ignored summary")
            assert "未确认" in json.dumps(step1.body, ensure_ascii=False)
            time.sleep(3)  # past where the acknowledged group's steps would have been due
    assert to(fake_dingtalk, "u-carol", "Taken summary") == []
    assert to(fake_dingtalk, "u-dave", "Taken summary") == []
    assert len(to(fake_dingtalk, "u-dave", "Ignored summary")) == 1
    assert "escalation_stopped" in srv.text() or "acknowledged" in srv.text()


def test_a_step_due_while_killed_is_sent_once_after_restart(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    payload = (ROOT / "tests/fixtures/alertmanager/firing-1.json").read_bytes()
    environ = env(tmp_path, fake_dingtalk, "4s")
    with serve(environ, tmp_path / "serve.log", workers=1) as srv:
        assert http("POST", srv.url + "/alertmanager", payload)[0] == 200
        assert fake_dingtalk.wait_for(lambda f: len(to(f, "u-bob")) == 1, 20), srv.text()
        wait_for_log(srv, "sent id=1 ")  # recorded: not the send's own at-least-once window
        srv.kill9()  # every process of it, while the step is not yet due
    sent_before = len(fake_dingtalk.delivered())
    time.sleep(5)  # the step falls due while nothing runs
    with serve(environ, tmp_path / "serve2.log", workers=1) as srv2:
        assert fake_dingtalk.wait_for(lambda f: len(to(f, "u-carol")) == 1, 20), srv2.text()
        time.sleep(3)  # anything sent twice would arrive in this time (step 2 is due too)
        assert fake_dingtalk.wait_for(lambda f: len(to(f, "u-dave")) == 1, 20), srv2.text()
        time.sleep(1)
    assert len(to(fake_dingtalk, "u-carol")) == 1
    assert len(to(fake_dingtalk, "u-dave")) == 1
    assert len(fake_dingtalk.delivered()) == sent_before + 2, [
        (r.body or {}).get("userid_list") for r in fake_dingtalk.delivered()
    ]
