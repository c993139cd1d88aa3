"""Two `serve` replicas on one PostgreSQL behave as one receiver that survives losing either.

200 alerts are posted across both replicas (the first one to both, as two Alertmanager
peers would: it is sent once); one replica (gunicorn, its workers and its
delivery process) is killed with SIGKILL half-way. Every alert still reaches DingTalk:
the survivor takes over the dead replica's leases once its heartbeat is 15 s stale.
Duplicates are possible only for a call the dead replica had in flight (at-least-once);
they are counted and printed, not hidden.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.dingtalk import FakeDingTalk
from tests.procs import Serve, http, wait_for_log
from tests.test_e2e import receiver_env

pytestmark = pytest.mark.e2e

N = 200
MARK = re.compile(r"replica-test #(\d+)\b")
FIRING = json.loads((Path(__file__).parent / "fixtures/alertmanager/firing-1.json").read_text())


def alert(n: int) -> bytes:
    doc = json.loads(json.dumps(FIRING))
    doc["alerts"][0]["fingerprint"] = f"{n:016x}"
    doc["alerts"][0]["annotations"]["summary"] = f"replica-test #{n}"
    doc["groupKey"] = f'{{}}:{{alertname="replica-test-{n}"}}'
    return json.dumps(doc).encode()


def delivered(fake: FakeDingTalk) -> Counter[int]:
    """How many times DingTalk accepted each alert."""
    seen: Counter[int] = Counter()
    for r in fake.delivered():
        seen.update({int(m) for m in MARK.findall(json.dumps(r.body, ensure_ascii=False))})
    return seen


def post(replicas: list[Serve], n: int) -> None:
    """Through a load balancer: the first replica that answers takes it."""
    for srv in replicas:
        try:
            status, body = http("POST", srv.url + "/alertmanager", alert(n), timeout=10)
        except OSError:
            continue  # a dead replica: the balancer tries the next
        if status == 200:
            return
    raise AssertionError(f"alert #{n} was accepted by no replica")


def test_two_replicas_one_killed_mid_way_deliver_every_alert(
    tmp_path: Path, fake_dingtalk: FakeDingTalk, postgres_url: str
) -> None:
    fake_dingtalk.delay = 0.02  # a send takes a while: the kill lands mid-send
    env = {
        "RECEIVER_DATABASE_URL": postgres_url,
        "RECEIVER_SEND_RATE": "50",
    }
    a_env = {**receiver_env(tmp_path / "a", fake_dingtalk), **env}
    b_env = {**receiver_env(tmp_path / "b", fake_dingtalk), **env}
    a = Serve(a_env, tmp_path / "a.log", workers=2)
    b = Serve(b_env, tmp_path / "b.log", workers=2)
    try:
        # Alertmanager HA: two peers post the same notification, one to each replica.
        assert http("POST", b.url + "/alertmanager", alert(0))[1]["status"] == "accepted"
        assert http("POST", a.url + "/alertmanager", alert(0))[1]["status"] == "duplicate"
        for n in range(1, N // 2):
            post([a, b] if n % 2 else [b, a], n)
        deadline = time.monotonic() + 60
        while sum(delivered(fake_dingtalk).values()) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        a.kill9()  # SIGKILL to gunicorn, its workers and its delivery process
        killed_at = time.monotonic()
        for n in range(N // 2, N):
            post([a, b], n)  # the balancer finds a dead, b answers
        assert fake_dingtalk.wait_for(lambda f: len(delivered(f)) == N, 120), (
            f"delivered {len(delivered(fake_dingtalk))} of {N}\n{b.text()[-3000:]}"
        )
        took = time.monotonic() - killed_at
        wait_for_log(b, "replica_lost owner=", 40)  # the survivor found the dead one stale
        lost_at = time.monotonic() - killed_at
    finally:
        b.stop()
        a.stop()
    seen = delivered(fake_dingtalk)
    duplicates = {n: c - 1 for n, c in seen.items() if c > 1}
    print(
        f"\nreplicas: {N} alerts, {sum(seen.values())} sends, duplicates={sum(duplicates.values())}"
        f" {sorted(duplicates)}; all delivered {took:.1f}s after the kill;"
        f" the dead replica found stale by {lost_at:.1f}s"
    )
    assert set(seen) == set(range(N))
