"""Two replicas on one PostgreSQL, the database stopped and started under load: nothing lost.

Clients post alerts across two `serve` replicas at a bounded rate and, as
Alertmanager does, repost each one until it gets a 2xx (to the other replica next,
as a balancer would). Half-way PostgreSQL is stopped with `pg_ctl stop -m immediate`
(a crash: no checkpoint, the clients' connections cut) and started again 20 s
later. While it is down, every webhook gets 503 and both replicas' /readyz say why;
afterwards every alert reaches DingTalk, and neither replica calls the other dead
for the beats it could not write meanwhile (receiver.delivery.replicas). Duplicates
(at-least-once: a call in flight when the database went) are counted and printed,
not hidden.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.conftest import _require_postgres
from tests.fakes.dingtalk import FakeDingTalk
from tests.pg import remove, start_server
from tests.procs import Serve, http
from tests.test_e2e import receiver_env
from tests.test_replicas import alert, delivered

pytestmark = pytest.mark.e2e

N = 150  # alerts in all
CLIENTS = 3  # posting at once, each one alert at a time
PAUSE_S = 0.05  # between one client's alerts: about 40 alerts/s in all, well under capacity
RETRY_S = 0.2  # between reposts of a refused alert
DOWN_S = 20.0  # longer than the heartbeat's 15-s stale period, as a failover can take


def test_two_replicas_database_stopped_and_started_under_load(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    _require_postgres()
    server = start_server(durable=True)  # its own: this test crashes it
    replicas: list[Serve] = []
    try:
        with psycopg.connect(server.url, autocommit=True) as db:
            db.execute("CREATE DATABASE receiver")
        env = {"RECEIVER_DATABASE_URL": server.url_for("receiver")}
        for name in ("a", "b"):
            env_one = {**receiver_env(tmp_path / name, fake_dingtalk), **env}
            replicas.append(Serve(env_one, tmp_path / f"{name}.log", workers=2))
        statuses: Counter[int] = Counter()  # every reply, refused and accepted
        accepted: set[int] = set()
        lock = threading.Lock()
        todo = iter(range(N))

        def client() -> None:
            while True:
                with lock:
                    n = next(todo, None)
                if n is None:
                    return
                for attempt in range(600):  # Alertmanager: repost until 2xx (bounded here)
                    srv = replicas[(n + attempt) % 2]
                    try:
                        status = http("POST", srv.url + "/alertmanager", alert(n), timeout=15)[0]
                    except OSError:
                        status = 0
                    with lock:
                        statuses[status] += 1
                    if 200 <= status < 300:
                        with lock:
                            accepted.add(n)
                        break
                    time.sleep(RETRY_S)
                time.sleep(PAUSE_S)

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(accepted) < N // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop(mode="immediate")
        down_at = time.monotonic()
        time.sleep(1)
        while_down = [http("GET", srv.url + "/readyz") for srv in replicas]
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
        with lock:
            accepted_before_restart = len(accepted)
        server.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "the clients did not finish"
        assert fake_dingtalk.wait_for(lambda f: set(delivered(f)) >= set(range(N)), 90), (
            f"not delivered: {sorted(set(range(N)) - set(delivered(fake_dingtalk)))}\n"
            + "\n".join(srv.text()[-3000:] for srv in replicas)
        )
        time.sleep(1)  # a late duplicate would arrive now
        after = [http("GET", srv.url + "/readyz")[0] for srv in replicas]
        logs = [srv.text() for srv in replicas]
    finally:
        for srv in replicas:
            srv.stop()
        remove(server)
    seen = delivered(fake_dingtalk)
    duplicates = {n: c - 1 for n, c in seen.items() if c > 1}
    print(
        f"\ndatabase down under two replicas: {N} alerts, replies {dict(sorted(statuses.items()))},"
        f" {accepted_before_restart} accepted before the restart, {sum(seen.values())} sends,"
        f" duplicates={sum(duplicates.values())} {sorted(duplicates)}"
    )
    assert accepted == set(range(N))
    assert set(statuses) <= {200, 503}, statuses  # refused only as Alertmanager retries
    assert statuses[503] > 0, "no webhook arrived while the database was down"
    for status, ready in while_down:  # each replica's /readyz says why
        assert status == 503 and not ready["outbox"]["ok"], ready
        assert "PostgreSQL unreachable" in ready["outbox"]["error"], ready
    assert after == [200, 200]
    assert not [line for log in logs for line in log.splitlines() if "replica_lost" in line]
