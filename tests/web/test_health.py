"""GET /healthz and /readyz, the delivery heartbeat, and the Dockerfile's HEALTHCHECK command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from receiver.delivery import health
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import ROOT
from tests.procs import descendants, http, is_delivery, serve


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def test_healthz_is_up_whatever_else_is_wrong(client: FlaskClient) -> None:
    res = client.get("/healthz")  # no delivery heartbeat at all
    assert (res.status_code, res.json) == (200, {"status": "ok"})


def test_ready_once_the_delivery_worker_beats(client: FlaskClient, settings: Settings) -> None:
    res = client.get("/readyz")
    assert res.status_code == 503 and res.json["status"] == "unready"
    assert res.json["delivery"] == {
        "ok": False, "heartbeat_age_s": None, "error": "the delivery worker has not started",
    }  # fmt: skip
    assert res.json["outbox"]["ok"] is True and res.json["config"]["ok"] is True

    assert health.beat(settings.data_dir)
    res = client.get("/readyz")
    assert res.status_code == 200 and res.json["status"] == "ready"
    assert res.json["config"]["routing"] == settings.routing
    assert res.json["outbox"] == {
        "ok": True, "pending": 0, "queued": 0, "sending": 0, "sent": 0, "retry": 0, "dead": 0,
        "superseded": 0,
        "dry_run": 0,
    }  # fmt: skip
    assert 0 <= res.json["delivery"]["heartbeat_age_s"] < 5


def test_stale_heartbeat_is_unready(client: FlaskClient, settings: Settings) -> None:
    assert health.beat(settings.data_dir, now=time.time() - health.STALE_AFTER_S - 5)
    res = client.get("/readyz")
    assert res.status_code == 503
    assert re.fullmatch(
        r"no delivery heartbeat for 12\ds \(limit 120s\)", res.json["delivery"]["error"]
    )
    health.beat(settings.data_dir)
    assert client.get("/readyz").status_code == 200


def test_unwritable_data_dir_is_unready(client: FlaskClient, settings: Settings) -> None:
    health.beat(settings.data_dir)
    os.mkdir(os.path.join(settings.data_dir, health.PROBE_FILE))  # the probe write now fails
    res = client.get("/readyz")
    assert res.status_code == 503
    assert res.json["outbox"]["ok"] is False and "cannot write to" in res.json["outbox"]["error"]


def test_broken_outbox_is_unready(client: FlaskClient, settings: Settings) -> None:
    health.beat(settings.data_dir)
    db = Path(settings.data_dir, "outbox.sqlite3")
    db.unlink()
    db.mkdir()  # sqlite can no longer open it
    res = client.get("/readyz")
    assert res.status_code == 503 and res.json["outbox"]["ok"] is False
    assert "outbox" in res.json["outbox"]["error"]


def test_beat_never_raises(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert health.beat(str(not_a_dir)) is False
    assert health.heartbeat_age(str(not_a_dir)) is None
    assert health.beat(str(tmp_path), now=1000.0)
    assert health.heartbeat_age(str(tmp_path), now=1010.0) == 10.0
    assert (tmp_path / health.HEARTBEAT_FILE).read_text() == f"{os.getpid()}\n"


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK CMD, exec form."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.MULTILINE)
    assert match, "Dockerfile has no exec-form HEALTHCHECK"
    cmd: list[str] = json.loads(match.group(1))
    assert cmd[0] == "python"
    return [sys.executable, *cmd[1:]]


def serve_env(tmp_path: Path) -> dict[str, str]:
    return {
        "RECEIVER_DATA_DIR": str(tmp_path / "data"),
        "RECEIVER_ROUTING": str(ROOT / "routing.yaml"),
        "RECEIVER_TEMPLATES": str(ROOT / "templates"),
        "DINGTALK_APP_KEY": "",
    }


@pytest.mark.e2e
def test_dockerfile_healthcheck_and_readiness_across_processes(tmp_path: Path) -> None:
    with serve(serve_env(tmp_path), tmp_path / "serve.log", workers=2) as srv:
        env = {**os.environ, "RECEIVER_LISTEN": f"0.0.0.0:{srv.port}"}
        check = subprocess.run(healthcheck_command(), env=env, capture_output=True, timeout=10)
        assert check.returncode == 0, check.stderr
        # Another process beats (as the delivery worker does): every web worker sees it.
        health.beat(str(tmp_path / "data"))
        for _ in range(4):
            status, body = http("GET", srv.url + "/readyz")
            assert status == 200 and body["delivery"]["ok"] is True, body
        # A stuck delivery worker (stopped, so it beats no more) makes every worker unready.
        (delivery,) = [p for p in descendants(srv.proc.pid) if is_delivery(p)]
        os.kill(delivery, signal.SIGSTOP)
        try:
            health.beat(str(tmp_path / "data"), now=time.time() - 3600)
            for _ in range(4):
                status, body = http("GET", srv.url + "/readyz")
                assert status == 503 and body["delivery"]["ok"] is False, body
        finally:
            os.kill(delivery, signal.SIGCONT)
    check = subprocess.run(healthcheck_command(), env=env, capture_output=True, timeout=10)
    assert check.returncode != 0  # nothing listens any more: unhealthy


@pytest.mark.e2e
def test_serve_becomes_ready_by_itself(tmp_path: Path) -> None:
    with serve(serve_env(tmp_path), tmp_path / "serve.log", workers=1) as srv:
        deadline = time.monotonic() + 10
        status, body = http("GET", srv.url + "/readyz")
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, body = http("GET", srv.url + "/readyz")
        assert status == 200, body
        assert body["delivery"]["heartbeat_age_s"] < 5
