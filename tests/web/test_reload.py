"""Hot reload through the real server: file edits, POST /-/reload, SIGHUP, and bad edits."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import time
from pathlib import Path

from receiver.settings import Settings
from tests.conftest import FIXTURES, ROOT, SIMPLE_ROUTING, env_for
from tests.procs import Serve, descendants, http, is_delivery, serve, wait_for_log

PAYLOAD = (FIXTURES / "alertmanager/firing-1.json").read_bytes()  # team=db -> receiver db
_serial = itertools.count(1)


def new_alert() -> bytes:
    """PAYLOAD as another alert (fingerprint): the same one again would be a duplicate."""
    doc = json.loads(PAYLOAD)
    doc["alerts"][0]["fingerprint"] = f"{next(_serial):016x}"
    return json.dumps(doc).encode()


def db_userids(srv: Serve, data: Path, n: int = 6) -> set[str]:
    """Post n alerts (spread over the workers) and return who the db receiver paged.

    The delivery process routes what the web workers accepted, so this waits for it.
    """
    from receiver.delivery.outbox import Outbox

    box = Outbox(str(data))
    before = {i.id for i in box.items()}
    for _ in range(n):
        assert http("POST", srv.url + "/alertmanager", new_alert())[0] == 200
    assert wait_until(lambda: box.counts()["pending"] == 0), srv.text()
    return {u for i in box.items() if i.id not in before for u in i.userids}


def dry_run_env(routing: Path, data: Path, **extra: str) -> dict[str, str]:
    """No credentials (dry run), this routing file and data dir, the bundled templates."""
    settings = Settings(routing=str(routing), data_dir=str(data), templates=str(ROOT / "templates"))
    return env_for(settings, **extra)


def wait_until(predicate, timeout: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_edits_reach_every_worker_and_bad_edits_keep_paging(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    good = SIMPLE_ROUTING.read_text()
    routing.write_text(good)
    data = tmp_path / "data"
    env = dry_run_env(routing, data)
    with serve(env, tmp_path / "serve.log", workers=3) as srv:
        assert db_userids(srv, data) == {"user0002"}

        # 1. An edit on disk is picked up by polling, in every worker.
        routing.write_text(good.replace("bob: user0002", "bob: user0099"))
        assert wait_until(lambda: db_userids(srv, data) == {"user0099"}), srv.text()

        # 2. A broken edit is refused with FILE:LINE; paging goes on with the running table.
        routing.write_text(good.replace("receiver: db\n", "receiver: nobody\n"))
        time.sleep(1.5)
        assert db_userids(srv, data, n=9) == {"user0099"}
        wait_for_log(srv, "config_reload_failed")
        assert re.search(rf"{re.escape(str(routing))}:\d+: .*nobody", srv.text())
        status, body = http("POST", srv.url + "/-/reload")
        assert status == 500 and "nobody" in str(body["problems"])
        assert body["error"] == "reload failed; the running config stays"
        assert re.match(rf"{re.escape(str(routing))}:\d+: ", body["problems"][0])  # as README says
        metrics = http("GET", srv.url + "/metrics")[1]
        assert 'dingtalk_receiver_config_reloads_total{outcome="failure"}' in metrics

        # 3. A worker that restarts while the file is broken boots on the last good table.
        workers = [p for p in descendants(srv.proc.pid) if not is_delivery(p)]
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(2)
        assert db_userids(srv, data, n=9) == {"user0099"}
        assert "config_invalid_using_last_good" in srv.text()

        # 3b. So does the delivery process, which routes what the web workers accepted.
        delivery = next(p for p in descendants(srv.proc.pid) if is_delivery(p))
        os.kill(delivery, signal.SIGKILL)
        wait_for_log(srv, "delivery_process_died")
        assert db_userids(srv, data, n=3) == {"user0099"}
        assert srv.text().count("config_invalid_using_last_good") >= 2

        # 4. SIGHUP: the arbiter checks the file and says so; it never restarts the
        # workers onto a broken file, and a good one reaches every worker.
        srv.proc.send_signal(signal.SIGHUP)
        wait_for_log(srv, "config_reload_failed reason=sighup")
        routing.write_text(good.replace("bob: user0002", "bob: user0123"))
        srv.proc.send_signal(signal.SIGHUP)
        wait_for_log(srv, "config_checked reason=sighup")
        assert wait_until(lambda: db_userids(srv, data) == {"user0123"}), srv.text()
        assert "Hang up" not in srv.text()  # gunicorn's own HUP (restart workers) never ran
        assert srv.proc.poll() is None  # still serving


def test_post_reload_answers_with_the_verdict_and_every_worker_follows(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    good = SIMPLE_ROUTING.read_text()
    routing.write_text(good)
    data = tmp_path / "data"
    env = dry_run_env(routing, data, RECEIVER_ADMIN_TOKEN="adm1n")
    admin = {"Authorization": "Bearer adm1n"}
    with serve(env, tmp_path / "serve.log", workers=3) as srv:
        assert http("POST", srv.url + "/-/reload")[0] == 401
        routing.write_text(good.replace("bob: user0002", "bob: user0077"))
        assert http("POST", srv.url + "/-/reload", headers=admin) == (200, {"status": "reloaded"})
        assert wait_until(lambda: db_userids(srv, data) == {"user0077"}), srv.text()


def test_a_file_rewritten_in_two_chunks_is_never_loaded_half_written(tmp_path: Path) -> None:
    """Issue #22: the first chunk, valid but without the child routes, was hot-loaded, and
    47 of 332 alerts went to the root receiver instead of their team."""
    from receiver.delivery.outbox import Outbox

    routing = tmp_path / "routing.yaml"
    routing.write_text(SIMPLE_ROUTING.read_text())
    full = SIMPLE_ROUTING.read_text().replace("bob: user0002", "bob: user0099")
    half = full[: full.index("  routes:")]  # valid on its own: team=db would go to ops
    data = tmp_path / "data"
    with serve(dry_run_env(routing, data), tmp_path / "serve.log", workers=2) as srv:
        assert db_userids(srv, data) == {"user0002"}
        box = Outbox(str(data))
        before = {i.id for i in box.items()}
        posted = 0

        def post_for(seconds: float) -> None:
            nonlocal posted
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                assert http("POST", srv.url + "/alertmanager", PAYLOAD)[0] == 200
                posted += 1
                time.sleep(0.05)

        with routing.open("w") as f:
            f.write(half)
            f.flush()
            post_for(1.5)  # shorter than RECEIVER_RELOAD_SETTLE (2 s)
            f.write(full[len(half) :])
        post_for(1.0)
        assert wait_until(lambda: db_userids(srv, data) == {"user0099"}), srv.text()
        assert wait_until(lambda: box.counts()["pending"] == 0)
        paged: dict[str, int] = {}
        for item in box.items():
            if item.id not in before:
                for u in item.userids:
                    paged[u] = paged.get(u, 0) + 1
        print(f"\n{posted} alerts posted while routing.yaml was rewritten; paged: {paged}")
        assert "manager4220" not in paged  # ops, the root receiver: the half-written table
        # One load in each process (2 workers, delivery): the half-written file never was.
        reloads = "config_reloaded reason=file_changed"
        assert wait_until(lambda: srv.text().count(reloads) >= 3), srv.text()
        assert srv.text().count(reloads) == 3


def test_readyz_says_the_file_on_disk_is_refused(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(SIMPLE_ROUTING.read_text())
    data = tmp_path / "data"
    with serve(dry_run_env(routing, data), tmp_path / "serve.log", workers=1) as srv:
        assert wait_until(lambda: http("GET", srv.url + "/readyz")[0] == 200)
        routing.write_text(SIMPLE_ROUTING.read_text().replace("receiver: db\n", "receiver: x\n"))
        wait_for_log(srv, "config_reload_failed")
        time.sleep(1.5)  # a poll of the worker that answers
        status, body = http("GET", srv.url + "/readyz")
        print(f"\n/readyz while routing.yaml is refused: {status} {body['config']}")
        # Ready still (the older table pages), but the config check says what is wrong.
        assert status == 200 and body["config"]["ok"] is False
        assert "refused" in body["config"]["error"]
        assert any("'x'" in p for p in body["config"]["problems"])
