"""Logs: one line per state change with ids, text or JSON lines, no payloads at INFO, no secrets."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.delivery.outbox import Outbox
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client
from receiver.logs import ACCESS_LOG_FORMAT, JsonFormatter, fields, formatter
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, ROOT, plan_pending, require_binary
from tests.fakes.dingtalk import APP_SECRET, FakeDingTalk
from tests.procs import http, serve, wait_for_log


def record(
    msg: str, args: Any = (), name: str = "receiver.delivery.worker", **extra: Any
) -> logging.LogRecord:
    rec = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


@pytest.mark.parametrize(
    "msg, args, event, found",
    [
        ("sent id=%d receiver=%s task_ids=%s", (7, "db", [11, 12]), "sent",
         {"id": 7, "receiver": "db", "task_ids": [11, 12]}),
        ("retry_scheduled id=%d in=%.1fs error=%s", (3, 2.345, "throttled"), "retry_scheduled",
         {"id": 3, "in": 2.3, "error": "throttled"}),
        ("enqueued source=%s ids=%s", ("alertmanager", [1, 2]), "enqueued",
         {"source": "alertmanager", "ids": [1, 2]}),
        ("delivery_process_died exitcode=%s; restarting", (-9,), "delivery_process_died",
         {"exitcode": -9}),
        ("dead_lettered id=%d error=%s", (5, ValueError("bad userid")), "dead_lettered",
         {"id": 5, "error": "bad userid"}),
        ("progress 100%% id=%d", (4,), "progress", {"id": 4}),
        ("Booting worker with pid: %s", (42,), None, {}),
        ("sent id=%d receiver=%s", (7,), "sent", {}),  # wrong arity: no fields, no crash
    ],
)  # fmt: skip
def test_fields_come_from_the_template(
    msg: str, args: Any, event: str | None, found: dict[str, Any]
) -> None:
    assert fields(record(msg, args)) == (event, found)


def test_access_log_fields_and_only_those() -> None:
    atoms = {"h": "127.0.0.1", "m": "POST", "U": "/alertmanager", "s": "200", "B": 31, "M": 4,
             "{authorization}i": "Bearer s3cret", "q": "token=s3cret"}  # fmt: skip
    rec = record(ACCESS_LOG_FORMAT, (atoms,), name="gunicorn.access")
    rec.args = atoms  # LogRecord unwraps a single mapping argument the same way
    line = json.loads(JsonFormatter().format(rec))
    assert line["event"] == "access"
    assert {k: line[k] for k in ("method", "path", "status", "bytes", "duration_ms")} == {
        "method": "POST", "path": "/alertmanager", "status": 200, "bytes": 31, "duration_ms": 4,
    }  # fmt: skip
    assert "s3cret" not in json.dumps(line)


def test_json_line_shape() -> None:
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        rec = record("dead_lettered id=%d error=%s", (9, "x\ny"), exc_info=None)
        rec.exc_info = sys.exc_info()
    rec.__dict__["group_key"] = '{}:{alertname="A"}'  # from extra=
    out = JsonFormatter().format(rec)
    assert "\n" not in out
    line = json.loads(out)
    assert line["event"] == "dead_lettered" and line["id"] == 9 and line["level"] == "INFO"
    assert (
        line["logger"] == "receiver.delivery.worker"
        and line["msg"] == "dead_lettered id=9 error=x\ny"
    )
    assert line["group_key"] == '{}:{alertname="A"}'
    assert "RuntimeError: boom" in line["exc"]
    assert line["ts"].endswith("+00:00")


def test_format_setting() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"RECEIVER_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ValueError, match="RECEIVER_LOG_FORMAT='yaml'"):
        Settings.from_env({"RECEIVER_LOG_FORMAT": "yaml"})
    assert isinstance(formatter("json"), JsonFormatter)
    text = formatter("text").format(record("sent id=%d", (1,)))
    assert text.endswith(" INFO receiver.delivery.worker sent id=1")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    root = logging.getLogger()
    handler, level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


MARKER = "PAYLOAD-ONLY-7f3a"


def test_state_changes_logged_with_ids_without_payloads_or_secrets(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, captured: Capture
) -> None:
    secrets = {"webhook": "wh-tok-9d2c", "admin": "adm-tok-51ee", "hmac": "hmac-k-03b7",
               "basic": "pw-77aa"}  # fmt: skip
    settings = live_settings.with_(
        webhook_token=secrets["webhook"], admin_token=secrets["admin"],
        grafana_hmac_secret=secrets["hmac"], basic_auth=f"ops:{secrets['basic']}",
    )  # fmt: skip
    client = create_app(settings).test_client()
    payload = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())
    payload["alerts"][0]["annotations"]["summary"] = f"disk full {MARKER}"
    payload["alerts"][0]["labels"]["marker"] = MARKER
    auth = {"Authorization": f"Bearer {secrets['webhook']}"}
    for n in range(3):  # three alert groups: a newer one of the same group would replace it
        payload["groupKey"] = f'{{}}:{{alertname="g{n}"}}'
        assert client.post("/alertmanager", json=payload, headers=auth).status_code == 200
    assert (
        client.post(
            "/-/reload", headers={"Authorization": f"Bearer {secrets['admin']}"}
        ).status_code
        == 200
    )

    assert plan_pending(client.application) == 3
    worker = Worker(Outbox(settings.data_dir), Client(settings), clock=lambda: 0.0)
    # sent, dead, paused: a throttle pauses sending for everyone.
    fake_dingtalk.fail(
        "asyncsend_v2", times=1, body={"errcode": 60011, "errmsg": "no permission"}, after=1
    )
    fake_dingtalk.fail(
        "asyncsend_v2", times=1, body={"errcode": 90002, "errmsg": "throttled"}, after=1
    )
    assert worker.run_once() == 3
    assert fake_dingtalk.sends()[-1].query["access_token"] == "tok-1"

    # Every level, both formats: no secret, and not the access token DingTalk issued.
    text_fmt, json_fmt = formatter("text"), JsonFormatter()
    everything = "\n".join(f.format(r) for r in captured.records for f in (text_fmt, json_fmt))
    for secret in [*secrets.values(), APP_SECRET]:
        assert secret not in everything, secret
    assert not re.search(r"\btok-1\b", everything)

    # INFO and up: no payload content.
    info = [r for r in captured.records if r.levelno >= logging.INFO]
    info_text = "\n".join(f.format(r) for r in info for f in (text_fmt, json_fmt))
    assert MARKER not in info_text

    # One line per state change, with its ids.
    lines = [json.loads(json_fmt.format(r)) for r in info if r.name.startswith("receiver")]
    events = [line.get("event") for line in lines]
    assert events.count("accepted") == events.count("enqueued") == 3
    by_event = {line["event"]: line for line in lines if "event" in line}
    assert by_event["enqueued"]["ids"] and by_event["enqueued"]["source"] == "alertmanager"
    assert by_event["enqueued"]["pending"] == by_event["accepted"]["id"] == 3
    assert {"sending_paused", "dead_lettered", "sent"} <= set(events)
    ids = {by_event[e]["id"] for e in ("sending_paused", "dead_lettered", "sent")}
    assert ids == {1, 2, 3}
    assert by_event["dead_lettered"]["level"] == "ERROR"
    assert "config_reloaded" in events


def test_serve_logs_json_lines_from_every_process(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    """gunicorn's own lines, its access log and the delivery process: all JSON, no secrets."""
    require_binary(sys.executable)
    token = "wh-tok-e2e-44c1"
    env = {
        "DINGTALK_APP_KEY": "fake-app-key", "DINGTALK_APP_SECRET": APP_SECRET,
        "DINGTALK_APP_AGENT_ID": "424242", "DINGTALK_API_BASE": fake_dingtalk.url,
        "RECEIVER_DATA_DIR": str(tmp_path / "data"), "RECEIVER_ROUTING": str(ROOT / "routing.yaml"),
        "RECEIVER_TEMPLATES": str(ROOT / "templates"), "RECEIVER_WEBHOOK_TOKEN": token,
        "RECEIVER_LOG_FORMAT": "json",
    }  # fmt: skip
    payload = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())
    payload["alerts"][0]["annotations"]["summary"] = f"disk full {MARKER}"
    with serve(env, tmp_path / "serve.log", workers=1) as srv:
        auth = {"Authorization": f"Bearer {token}"}
        status, _ = http("POST", srv.url + "/alertmanager?token=" + token, payload, headers=auth)
        assert status == 200
        wait_for_log(srv, '"event": "sent"')
    text = srv.text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # each one is JSON
    assert token not in text and APP_SECRET not in text and MARKER not in text
    assert all(line["ts"] and line["level"] and "msg" in line for line in lines)
    access = [line for line in lines if line.get("event") == "access"]
    post = next(line for line in access if line["path"] == "/alertmanager")
    assert (
        post["method"] == "POST" and post["status"] == 200 and post["logger"] == "gunicorn.access"
    )
    accepted = next(line for line in lines if line.get("event") == "accepted")
    enqueued = next(line for line in lines if line.get("event") == "enqueued")
    sent = next(line for line in lines if line.get("event") == "sent")
    assert enqueued["pending"] == accepted["id"] and sent["id"] in enqueued["ids"]
    assert accepted["process"] != enqueued["process"] == sent["process"]  # web, then delivery
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    started = next(line for line in lines if line.get("event") == "delivery_process_started")
    assert started["pid"] == sent["process"]  # a `pid=` field is not the emitting process
