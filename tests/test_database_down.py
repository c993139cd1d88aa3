"""PostgreSQL stopped and started under load: 503 while it is down, nothing accepted lost.

A poster keeps sending alerts to a `serve` on PostgreSQL, as Alertmanager would, while
the database is stopped for a few seconds and started again. Webhooks answer 503
(Alertmanager retries those), /readyz says why, delivery pauses and resumes by itself,
and every alert that got a 200 reaches DingTalk.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import _require_postgres
from tests.fakes.dingtalk import FakeDingTalk
from tests.pg import remove, start_server
from tests.procs import http, serve
from tests.test_e2e import receiver_env
from tests.test_replicas import alert, delivered

pytestmark = pytest.mark.e2e


def test_database_stopped_and_started_under_load(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    _require_postgres()
    server = start_server()  # its own: this test stops it
    try:
        with psycopg.connect(server.url, autocommit=True) as db:
            db.execute("CREATE DATABASE receiver")
        env = {**receiver_env(tmp_path, fake_dingtalk),
               "RECEIVER_DATABASE_URL": server.url_for("receiver")}  # fmt: skip
        with serve(env, tmp_path / "serve.log") as srv:
            replies: dict[int, int] = {}
            stop = threading.Event()

            def poster() -> None:
                n = 0
                while not stop.is_set() and n < 2000:
                    try:
                        replies[n] = http("POST", srv.url + "/alertmanager", alert(n))[0]
                    except OSError:
                        replies[n] = 0
                    n += 1
                    time.sleep(0.05)

            thread = threading.Thread(target=poster)
            thread.start()
            time.sleep(2)
            server.stop()
            time.sleep(1)
            status, ready = http("GET", srv.url + "/readyz")
            time.sleep(3)
            server.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until webhooks are taken again, then a few
                if sum(1 for s in list(replies.values())[-10:] if s == 200) == 10:
                    break
                time.sleep(0.2)
            stop.set()
            thread.join(30)
            accepted = {n for n, s in replies.items() if s == 200}
            refused = {n for n, s in replies.items() if s != 200}
            assert fake_dingtalk.wait_for(lambda f: accepted <= set(delivered(f)), 60), (
                f"lost: {sorted(accepted - set(delivered(fake_dingtalk)))}\n{srv.text()[-3000:]}"
            )
            after = http("GET", srv.url + "/readyz")
        print(f"\ndatabase down: {len(accepted)} accepted and delivered, {len(refused)} refused")
        assert {replies[n] for n in refused} <= {503}  # refused as Alertmanager retries
        assert refused, "no webhook arrived while the database was down"
        assert status == 503 and not ready["outbox"]["ok"], ready
        assert "PostgreSQL unreachable" in ready["outbox"]["error"], ready  # /readyz says why
        assert after[0] == 200, after
    finally:
        remove(server)
