"""The real server (gunicorn): HTTP behaviour that depends on it, and the settings that
`serve` must refuse at once because they would only fail once gunicorn or the delivery
process runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.settings import Settings
from receiver.web.app import create_app
from receiver.web.server import DeliverySupervisor
from tests.conftest import FIXTURES, ROOT, env_for
from tests.procs import Serve, serve

AM = (FIXTURES / "alertmanager" / "firing-4.json").read_bytes().rstrip()
LIMIT = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("http-review")
    settings = Settings(
        data_dir=str(tmp / "data"),
        routing=str(FIXTURES / "routing" / "simple.yaml"),
        templates=str(Path(__file__).resolve().parents[2] / "templates"),
    )
    env = env_for(settings, RECEIVER_MAX_BODY_BYTES=str(LIMIT))
    with serve(env, tmp / "serve.log", workers=1) as srv:
        yield srv


def post_chunked(srv: Serve, path: str, body: bytes, chunk: int = 1000) -> tuple[int, bytes]:
    """POST with Transfer-Encoding: chunked and no Content-Length; (status, reply body)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    chunks = b"".join(
        b"%x\r\n" % len(body[i : i + chunk]) + body[i : i + chunk] + b"\r\n"
        for i in range(0, len(body), chunk)
    )
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(head + chunks + b"0\r\n\r\n")
        reply = b""
        while data := s.recv(65536):
            reply += data
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def padded(size: int) -> bytes:
    """The Alertmanager fixture as an alert of its own (fingerprint = size: one server takes
    them all, and the same alert again is a duplicate), padded with spaces to `size` bytes."""
    first = json.loads(AM)["alerts"][0]["fingerprint"].encode()
    body = AM.replace(first, f"{size:016x}".encode(), 1)
    assert len(body) == len(AM) <= size
    return body + b" " * (size - len(body))


def big_annotation(size: int) -> bytes:
    doc = json.loads(AM)
    doc["alerts"][0]["annotations"]["description"] = "x" * size
    return json.dumps(doc).encode()


@pytest.mark.parametrize("size", [len(AM), LIMIT])
def test_chunked_body_within_the_limit_is_accepted(server: Serve, size: int) -> None:
    status, body = post_chunked(server, "/alertmanager", padded(size))
    assert status == 200, body
    assert json.loads(body)["status"] == "accepted"


@pytest.mark.parametrize(
    "body",
    [padded(LIMIT + 1), padded(3 * LIMIT), big_annotation(2 * LIMIT)],
    ids=["one byte over", "padding over", "annotation over"],
)
def test_chunked_body_over_the_limit_is_413(server: Serve, body: bytes) -> None:
    # Without Content-Length, Werkzeug cut the body at the limit instead of refusing it:
    # a 400 "invalid JSON" for a valid body, or a 200 for one over the limit.
    status, reply = post_chunked(server, "/alertmanager", body)
    assert status == 413, reply
    assert "error" in json.loads(reply)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/alertmanager", {"POST"}),
        ("PUT", "/alertmanager/ops", {"POST"}),
        ("GET", "/grafana", {"POST", "PUT"}),
        ("GET", "/-/reload", {"POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_405_says_which_methods_are_allowed(
    settings: Settings, method: str, path: str, allowed: set[str]
) -> None:
    # RFC 9110 15.5.6: a 405 MUST carry Allow. The JSON error handler dropped it.
    r = create_app(settings).test_client().open(path, method=method)
    assert r.status_code == 405
    assert "error" in r.get_json()
    assert allowed <= {m.strip() for m in r.headers.get("Allow", "").split(",")}


# -- settings refused by `serve` at once, with the variable named ------------------------


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("RECEIVER_TIMEZONE", "Mars/Olympus"),
        ("RECEIVER_TIMEZONE", "../etc/passwd"),
        ("RECEIVER_LANGUAGE", "fr"),
        ("RECEIVER_WORKERS", "0"),
        ("RECEIVER_WORKERS", "-2"),
        ("RECEIVER_MAX_BODY_BYTES", "0"),
        ("RECEIVER_MAX_MESSAGE_BYTES", "-1"),
        ("RECEIVER_RECIPIENTS_PER_MINUTE", "0"),
        ("RECEIVER_USER_DAILY_LIMIT", "-5"),
        ("RECEIVER_SEND_RATE", "inf"),
        ("RECEIVER_SEND_RATE", "nan"),
        ("RECEIVER_DIRECTORY_QPS", "nan"),
        ("RECEIVER_HTTP_TIMEOUT", "nan"),
        ("RECEIVER_GIVE_UP_AFTER", "infh"),
        ("RECEIVER_RETENTION", "inf"),
        ("RECEIVER_ACK_TTL", "a day"),
        ("RECEIVER_LISTEN", "8080"),
        ("RECEIVER_LISTEN", "127.0.0.1:http"),
        ("RECEIVER_LISTEN", "127.0.0.1:70000"),
        ("DINGTALK_APP_AGENT_ID", "my-app"),
        ("DINGTALK_PROXY", "10.0.0.1:3128"),
        ("DINGTALK_API_BASE", "oapi.dingtalk.com"),
        ("ALERTMANAGER_URL", "localhost:9093"),
        ("RECEIVER_BASIC_AUTH", "admin"),
        ("RECEIVER_READ_TIMEOUT", "0"),
        ("RECEIVER_HTTP_TIMEOUT", "0"),
        ("RECEIVER_GIVE_UP_AFTER", "0s"),
        ("RECEIVER_RETRY_BACKOFF_MIN", "0"),
        ("RECEIVER_RETRY_BACKOFF_MAX", "0.5"),
        ("RECEIVER_RETENTION", "0d"),
        ("RECEIVER_ACK_TTL", "0"),
        ("RECEIVER_COMMIT_BATCH", "0"),
        ("RECEIVER_RELOAD_SETTLE", "-1s"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_by_name(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: raw})


def test_a_url_setting_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="DINGTALK_PROXY") as e:
        Settings.from_env({"DINGTALK_PROXY": "user:s3cret@10.0.0.1:3128"})
    assert "s3cret" not in str(e.value)
    assert Settings.from_env({"DINGTALK_PROXY": "http://u:p@10.0.0.1:3128"}).proxy


def test_serve_workers_flag_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        Settings.from_env({}, workers=0)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RECEIVER_TIMEZONE": "Mars/Olympus"}, "RECEIVER_TIMEZONE"),
        ({"RECEIVER_SEND_RATE": "inf"}, "RECEIVER_SEND_RATE"),
        ({"RECEIVER_WORKERS": "0"}, "RECEIVER_WORKERS"),
        ({"RECEIVER_EXTERNAL_URL": "https://rx.example"}, "RECEIVER_SECRET_KEY"),
        ({"DINGTALK_APP_AGENT_ID": "abc"}, "DINGTALK_APP_AGENT_ID"),
    ],
)
def test_serve_refuses_a_bad_setting_before_starting(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    full = {**os.environ, **env, "RECEIVER_DATA_DIR": str(tmp_path / "data")}
    full.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "receiver", "serve", "--listen", "127.0.0.1:1"],
            env=full, cwd=ROOT, capture_output=True, text=True, timeout=15,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve kept running with {env}")
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith(f"Error: {expected}"), out.stderr
    assert "Traceback" not in out.stderr


def test_send_test_names_a_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "RECEIVER_HTTP_TIMEOUT": "soon", "RECEIVER_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "receiver", "send-test", "--to", "u1"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "RECEIVER_HTTP_TIMEOUT" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_names_a_listen_without_a_host_before_gunicorn_runs(tmp_path: Path) -> None:
    env = {**os.environ, "RECEIVER_LISTEN": "8080", "RECEIVER_DATA_DIR": str(tmp_path / "d")}
    out = subprocess.run([sys.executable, "-m", "receiver", "serve"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=15)  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.startswith("Error: RECEIVER_LISTEN='8080': expected HOST:PORT"), out.stderr
    out = subprocess.run([sys.executable, "-m", "receiver", "serve", "--listen", "8080"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=15)  # fmt: skip
    assert out.stderr.startswith("Error: --listen='8080': expected HOST:PORT"), out.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", [["send-test", "--to", "u1"], ["deliver"]])
def test_a_non_numeric_agent_id_is_named_not_a_traceback(
    command: list[str], tmp_path: Path
) -> None:
    env = {**os.environ, "DINGTALK_APP_KEY": "k", "DINGTALK_APP_SECRET": "s",
           "DINGTALK_APP_AGENT_ID": "abc", "RECEIVER_DATA_DIR": str(tmp_path)}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "receiver", *command], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=15)  # fmt: skip
    assert out.returncode == 1
    assert "DINGTALK_APP_AGENT_ID='abc' is not a number" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_misspelt_variable_is_named_with_the_one_it_was_meant_to_be(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DINGTALK_")}
    env.update(DINGTALK_APP_KEY="k", DINGTALK_APP_SECRET="s", DINGTALK_AGENT_ID="123",
               RECEIVER_DATA_DIR=str(tmp_path))  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "receiver", "send-test", "--to", "u1"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=15)  # fmt: skip
    assert out.returncode == 1
    assert (
        "DINGTALK_APP_AGENT_ID is not set (DINGTALK_AGENT_ID is set but is not a setting;"
        " did you mean DINGTALK_APP_AGENT_ID?)" in out.stderr
    ), out.stderr
    settings = Settings.from_env({"RECEIVER_LISTN": "x", "RECEIVER_REQUIRE_E2E": "1"})
    assert settings.unknown == (
        "RECEIVER_LISTN is set but is not a setting; did you mean RECEIVER_LISTEN?",
    )


SCRAPE = "from receiver import metrics; print(metrics.exposition()[0].decode())"


@pytest.mark.parametrize("multiprocess", [True, False])
def test_counters_the_alert_rules_watch_are_exported_at_zero_from_the_start(
    tmp_path: Path, multiprocess: bool
) -> None:
    """`increase()` needs a sample before the first increment: a series that appears at 1
    has no increase, so the first failed reload (or the first 503) would never alert.
    The promtool tests in examples/ feed these series from 0, as the receiver must."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if multiprocess:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", SCRAPE], env=env, cwd=ROOT, capture_output=True, text=True,
        check=True, timeout=60,
    ).stdout  # fmt: skip
    from prometheus_client.parser import text_string_to_metric_families

    exported = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(out)
        for sample in family.samples
    }
    for name, labels in (
        ("config_reloads_total", {"outcome": "failure"}),
        ("config_reloads_total", {"outcome": "success"}),
        ("payloads_received_total", {"source": "alertmanager", "outcome": "unavailable"}),
        ("payloads_received_total", {"source": "grafana", "outcome": "accepted"}),
        ("alerts_received_total", {"source": "alertmanager"}),
        ("sends_total", {"outcome": "sent", "errclass": ""}),
    ):
        key = (f"dingtalk_receiver_{name}", tuple(sorted(labels.items())))
        assert exported.get(key) == 0.0, f"{key} not at 0 in\n{out}"


class _CrashingAtBoot(DeliverySupervisor):
    POLL_S = 0.02
    RESTART_MIN_S = 0.1
    RESTART_MAX_S = 0.4

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.spawned: list[float] = []

    def _command(self) -> list[str]:
        self.spawned.append(time.monotonic())
        return [sys.executable, "-c", "pass"]  # dies at once, as a crash at boot does


def test_a_delivery_process_that_dies_at_boot_is_restarted_with_backoff(
    settings: Settings,
) -> None:
    sup = _CrashingAtBoot(settings)
    sup.start()
    time.sleep(2.0)
    sup.stop()
    gaps = [b - a for a, b in zip(sup.spawned, sup.spawned[1:], strict=False)]
    # Without backoff it restarts every poll (dozens of times in 2 s); with it, the
    # gaps grow 0.1, 0.2, 0.4 and stay at the cap. A slow machine only lengthens them.
    assert 2 <= len(sup.spawned) <= 9, gaps
    assert gaps[-1] >= 0.35, gaps


def test_last_reload_successful_follows_the_file_on_disk(
    settings: Settings, tmp_path: Path
) -> None:
    from prometheus_client import REGISTRY

    from receiver.delivery.state import State
    from receiver.errors import ConfigError

    def ok() -> float | None:
        return REGISTRY.get_sample_value("dingtalk_receiver_config_last_reload_successful")

    routing = tmp_path / "routing.yaml"
    good = Path(settings.routing).read_text()
    routing.write_text(good)
    state = State(settings.with_(routing=str(routing)))
    assert ok() == 1
    routing.write_text(good + "\nbogus: 1\n")
    with pytest.raises(ConfigError):
        state.reload("file_changed")
    assert ok() == 0  # until it loads again, however long ago the failure was
    routing.write_text(good)
    state.reload("file_changed")
    assert ok() == 1


def test_last_reload_successful_under_serve_is_the_minimum_of_its_processes(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.conftest import env_for
    from tests.procs import http, serve

    routing = tmp_path / "routing.yaml"
    good = Path(settings.routing).read_text()
    routing.write_text(good)
    env = env_for(settings.with_(routing=str(routing)))

    def ok(srv: Serve) -> list[str]:
        _, text = http("GET", srv.url + "/metrics")
        name = "dingtalk_receiver_config_last_reload_successful"
        return [line for line in str(text).splitlines() if line.startswith(name)]

    def wait_for(srv: Serve, want: str) -> None:
        deadline = time.monotonic() + 30
        while ok(srv) != [want] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ok(srv) == [want]

    with serve(env, tmp_path / "serve.log") as srv:  # the arbiter loads no table: still 1
        wait_for(srv, "dingtalk_receiver_config_last_reload_successful 1.0")
        routing.write_text(good + "\nbogus: 1\n")
        wait_for(srv, "dingtalk_receiver_config_last_reload_successful 0.0")
        routing.write_text(good)
        wait_for(srv, "dingtalk_receiver_config_last_reload_successful 1.0")


def test_serve_forgets_the_last_runs_heartbeat(settings: Settings) -> None:
    from receiver.delivery import health

    os.makedirs(settings.data_dir, exist_ok=True)
    assert health.beat(settings.data_dir)  # as a previous run left it, seconds ago
    sup = _CrashingAtBoot(settings)  # a delivery process that never polls
    sup.start()
    try:
        assert health.heartbeat_age(settings.data_dir) is None  # so /readyz says not ready
    finally:
        sup.stop()


def test_a_delivery_process_whose_serve_died_stops_retrying_its_start(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.conftest import env_for

    env = {**os.environ, **env_for(settings), "RECEIVER_ROUTING": str(tmp_path / "missing.yaml")}
    not_its_parent = str(os.getpid() + 100000)  # as if serve had died and it was adopted
    proc = subprocess.run(
        [sys.executable, "-m", "receiver", "deliver", "--parent-pid", not_its_parent],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "config_invalid" in proc.stderr and "delivery_orphaned" in proc.stderr, proc.stderr
