"""`serve` with RECEIVER_DELIVERY_PROCESSES=2: both run, each alert once and in order, a
killed one is restarted, SIGTERM stops both. The real serve against the fake DingTalk."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Engine
from tests.delivery.test_faults import env, payload
from tests.fakes.dingtalk import FakeDingTalk
from tests.procs import Serve, descendants, http, is_delivery, serve

pytestmark = pytest.mark.e2e

EVENT = re.compile(r"alert (Seq\d{4}) (firing|resolved)")


@pytest.fixture
def fake(fake_dingtalk: FakeDingTalk) -> Iterator[FakeDingTalk]:
    yield fake_dingtalk
    fake_dingtalk.recover()


def event(seq: int, status: str) -> dict[str, Any]:
    p = payload(seq)
    p["status"] = status
    for a in p["alerts"]:
        a["status"] = status
        a["annotations"] = {"summary": f"alert Seq{seq:04d} {status}"}
        if status == "resolved":
            a["endsAt"] = "2026-11-28T03:20:00Z"
    return p


def post_events(srv: Serve, seqs: range) -> dict[int, int]:
    """Each group fires, then resolves, to one person (receiver ra: user-a).
    Returns the group (seq) of each accepted webhook id."""
    group = {}
    for seq in seqs:
        for status in ("firing", "resolved"):
            code, body = http("POST", f"{srv.url}/alertmanager/ra", event(seq, status))
            assert code == 200 and body["status"] == "accepted", body
            group[body["id"]] = seq
    return group


def events(fake: FakeDingTalk) -> list[tuple[str, str]]:
    """What user-a was sent, in the order DingTalk accepted it."""
    out = []
    for r in fake.delivered():
        assert r.body is not None and r.body["userid_list"] == "user-a"
        out += EVENT.findall(json.dumps(r.body["msg"], ensure_ascii=False))
    return out


def check_each_once_in_order(got: list[tuple[str, str]], seqs: range) -> None:
    assert sorted(got) == sorted((f"Seq{s:04d}", st) for s in seqs for st in ("firing", "resolved"))
    for s in seqs:  # each group's firing message before its resolved one
        mine = [st for name, st in got if name == f"Seq{s:04d}"]
        assert mine == ["firing", "resolved"], (s, mine)


def deliveries(srv: Serve, n: int = 2, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in descendants(srv.proc.pid) if is_delivery(p)]
        if len(found) == n:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not {n} delivery processes: {found}\n{srv.text()}")


def ready(srv: Serve, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http("GET", srv.url + "/readyz")
        if status == 200:
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"not ready: {body}\n{srv.text()}")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_two_delivery_processes_send_each_alert_once_in_order(
    tmp_path: Path, fake: FakeDingTalk, engine: Engine
) -> None:
    e = env(tmp_path, fake, RECEIVER_DELIVERY_PROCESSES="2", RECEIVER_LOG_FORMAT="json")
    if engine.database_url:
        e["RECEIVER_DATABASE_URL"] = engine.database_url
    with serve(e, tmp_path / "serve.log") as srv:
        pids = set(deliveries(srv))
        assert len(pids) == 2
        ready(srv)
        group = post_events(srv, range(40))
        assert fake.wait_for(lambda f: len(events(f)) >= 80, 60), srv.text()
        time.sleep(0.5)  # nothing more comes: no message twice
        check_each_once_in_order(events(fake), range(40))
        lines = [json.loads(x) for x in srv.text().splitlines() if x.startswith("{")]
        assert "Traceback" not in srv.text()
        # Each planned its share of the groups; one group's webhooks, one process.
        planned: dict[int, set[int]] = {}
        for x in lines:
            if x.get("event") == "enqueued":
                planned.setdefault(group[x["pending"]], set()).add(x["process"])
        assert len(planned) == 40 and {len(p) for p in planned.values()} == {1}
        assert set().union(*planned.values()) == pids


def test_a_killed_delivery_process_is_restarted_and_nothing_is_lost(
    tmp_path: Path, fake: FakeDingTalk
) -> None:
    fake.fail("asyncsend_v2", times=10**9, status=503, body={})  # everything stays queued
    e = env(tmp_path, fake, RECEIVER_DELIVERY_PROCESSES="2")
    srv = Serve(e, tmp_path / "serve.log", workers=2)
    try:
        first = deliveries(srv)
        ready(srv)
        post_events(srv, range(20))
        victim = first[1]
        started = srv.text().count("delivery_process_started")
        os.kill(victim, signal.SIGKILL)
        post_events(srv, range(20, 30))  # while it is down: the other plans its groups too
        deadline = time.monotonic() + 30
        while srv.text().count("delivery_process_started") == started:
            assert time.monotonic() < deadline, srv.text()
            time.sleep(0.1)
        after = deliveries(srv)
        assert victim not in after and first[0] in after
        fake.recover()
        assert fake.wait_for(lambda f: len(events(f)) >= 60, 60), srv.text()
        time.sleep(0.5)
        check_each_once_in_order(events(fake), range(30))
        srv.proc.send_signal(signal.SIGTERM)  # stops both, and exits 0
        assert srv.proc.wait(30) == 0, srv.text()
        assert srv.text().count("delivery_process_stopped") == 2
        assert not [p for p in descendants(srv.proc.pid) if is_delivery(p)]
    finally:
        if srv.proc.poll() is None:
            srv.kill9()
        srv.log.close()
    assert "delivery_process_died" in srv.text()
