"""`serve` checks the port and takes the data dir before it touches anything there: a
second serve, or one whose port is taken, leaves the running one's state as it was."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.settings import Settings
from tests.conftest import ROOT, env_for
from tests.procs import free_port, http, serve, wait_for_log


def run_serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    full.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        return subprocess.run(
            [sys.executable, "-m", "receiver", "serve", *args],
            env=full, cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the second serve kept running")


def test_a_second_serve_on_the_same_data_dir_refuses_and_leaves_the_first_alone(
    settings: Settings, tmp_path: Path
) -> None:
    env = env_for(settings)
    with serve(env, tmp_path / "serve.log", workers=1) as first:
        metrics_dir = Path(settings.data_dir) / "metrics"
        before = sorted(p.name for p in metrics_dir.iterdir())
        assert before  # the first one's processes keep their counters here
        out = run_serve(env, "--listen", f"127.0.0.1:{free_port()}")
        assert out.returncode == 1, out.stderr
        assert f"pid {first.proc.pid}" in out.stderr, out.stderr
        assert str(Path(settings.data_dir).resolve()) in out.stderr
        assert "Traceback" not in out.stderr
        assert set(before) <= {p.name for p in metrics_dir.iterdir()}  # none removed
        assert http("GET", first.url + "/metrics")[0] == 200
    # once the first has stopped, the lock is free again
    with serve(env, tmp_path / "serve2.log", workers=1) as second:
        assert http("GET", second.url + "/healthz")[0] == 200


@pytest.mark.parametrize(("how", "setting"), [("flag", "--listen"), ("env", "RECEIVER_LISTEN")])
def test_a_port_in_use_is_named_with_its_setting_and_nothing_is_touched(
    settings: Settings, how: str, setting: str
) -> None:
    marker = Path(settings.data_dir) / "metrics" / "counter_1.db"
    marker.parent.mkdir(parents=True)
    marker.write_bytes(b"a running instance's counters")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listen = f"127.0.0.1:{port}"
        if how == "flag":
            out = run_serve(env_for(settings), "--listen", listen)
        else:
            out = run_serve(env_for(settings, RECEIVER_LISTEN=listen))
    assert out.returncode == 1, out.stderr
    assert f"port {port}" in out.stderr and f"{setting}={listen}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert marker.read_bytes() == b"a running instance's counters"
    assert sorted(p.name for p in Path(settings.data_dir).iterdir()) == ["metrics"]


def test_each_config_warning_is_logged_once_not_once_per_process(
    settings: Settings, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "receivers:\n  - {name: ops, users: [nobody-alias]}\nroute: {receiver: ops}\n"
    )
    env = env_for(settings.with_(routing=str(routing)))
    with serve(env, tmp_path / "serve.log", workers=2) as srv:
        http("GET", srv.url + "/readyz")  # every web worker has loaded the file by now
        wait_for_log(srv, "config_warning")
        for _ in range(2):
            http("GET", srv.url + "/healthz")
    assert srv.text().count("'nobody-alias' is not an alias") == 1, srv.text()
