"""Two Alertmanager peers that cannot gossip both send one notification: it pages once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.fakes.dingtalk import FakeDingTalk
from tests.procs import ALERTMANAGER, alertmanager, http, serve, wait_for_log
from tests.test_e2e import receiver_env

pytestmark = pytest.mark.e2e


def test_two_partitioned_peers_page_once(tmp_path: Path, fake_dingtalk: FakeDingTalk) -> None:
    am_bin = require_binary(ALERTMANAGER)
    (tmp_path / "am-1").mkdir(), (tmp_path / "am-2").mkdir()
    now = datetime.now(UTC)
    # As Prometheus does: the same alert, with the same startsAt and endsAt, to every peer.
    alert = {
        "labels": {"alertname": "DiskFull", "team": "db", "severity": "critical"},
        "annotations": {"summary": "disk 97% full"},
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }
    with serve(receiver_env(tmp_path, fake_dingtalk), tmp_path / "serve.log") as srv:
        url = srv.url + "/alertmanager"
        # Clustering off on both: the gossip partition in which each peer sends on its own.
        with alertmanager(am_bin, url, tmp_path / "am-1") as am1:
            with alertmanager(am_bin, url, tmp_path / "am-2") as am2:
                for am in (am1, am2):
                    assert http("POST", am + "/api/v2/alerts", [alert])[0] == 200
                wait_for_log(srv, "duplicate first_id=", timeout=30)
                wait_for_log(srv, "sent id=", timeout=30)
        status, ready = http("GET", srv.url + "/readyz")
        unfinished = {k: ready["outbox"][k] for k in ("pending", "queued", "sending", "retry")}
        assert unfinished == {"pending": 0, "queued": 0, "sending": 0, "retry": 0}, ready
        assert srv.text().count("accepted id=") == 1
    sends = [r for r in fake_dingtalk.sends() if r.body]
    assert len(sends) == 1, [r.body for r in sends]
    assert "disk 97% full" in str(sends[0].body)
