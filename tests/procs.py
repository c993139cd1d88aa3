"""Real processes for end-to-end tests: `dingtalk-receiver serve` and Alertmanager, on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, Any]:  # fmt: skip
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            raw = res.read()
            status = res.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def wait_http(url: str, timeout: float = 20, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    raise TimeoutError(url)


def is_delivery(pid: int) -> bool:
    """serve's delivery process: `deliver` is one of its arguments, not a part of a path."""
    try:
        return b"deliver" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below pid (Linux /proc), for kill -9 of a whole tree."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def freeze(pid: int, sqlite_path: Path, tries: int = 100) -> None:
    """SIGSTOP `pid` at a moment it holds no write lock on `sqlite_path`.

    Frozen inside a transaction, it would hold SQLite's write lock and every writer
    would wait for it, then answer 503: what a really stuck process does, and not what
    a test that freezes delivery to keep its work waiting means to show."""
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        db = sqlite3.connect(sqlite_path, timeout=0.2, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.02)
        finally:
            db.close()
    raise RuntimeError(f"{pid} held the write lock on {sqlite_path} every time it was stopped")


class Serve:
    """`dingtalk-receiver serve` in a subprocess, its log in a file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, workers: int = 2, cwd: Path | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--listen", f"127.0.0.1:{self.port}",
             "--workers", str(workers)],
            env=full_env, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
        )  # fmt: skip
        wait_http(self.url + "/healthz", proc=self.proc)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.log.close()
        return self.proc.returncode

    def kill9(self) -> None:
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)


@contextmanager
def serve(
    env: dict[str, str], log_path: Path, workers: int = 2, cwd: Path | None = None
) -> Iterator[Serve]:
    s = Serve(env, log_path, workers, cwd)
    try:
        yield s
    finally:
        s.stop()


ALERTMANAGER_YML = """
route:
  receiver: dingtalk
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: dingtalk
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


@contextmanager
def alertmanager(
    binary: str, webhook_url: str, tmp: Path, config: str | None = None
) -> Iterator[str]:
    port = free_port()
    cfg = tmp / "alertmanager.yml"
    cfg.write_text(config or ALERTMANAGER_YML.format(url=webhook_url))
    log = open(tmp / "alertmanager.log", "ab")
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.path={tmp / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/-/ready", proc=proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def wait_for_log(srv: Serve, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in srv.text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log:\n{srv.text()}")
