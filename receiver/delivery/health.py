"""Readiness: the delivery worker's heartbeat, and a write probe of the data dir.

The heartbeat is a file in RECEIVER_DATA_DIR whose mtime is the worker's last
poll, one per delivery process (`delivery.heartbeat`, `delivery-1.heartbeat`, …).
A file, not the heartbeat metric: /readyz runs in a gunicorn worker that
can't see the delivery process's memory, a file works without
PROMETHEUS_MULTIPROC_DIR, and touching it takes no lock on the outbox.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)

HEARTBEAT_FILE = "delivery.heartbeat"
PROBE_FILE = ".readyz-probe"
# A poll runs every 0.05 s, but one batch is up to 10 sends at the 10 s HTTP timeout
# (plus a token refresh). A worker busy with a slow DingTalk is alive, not stuck.
STALE_AFTER_S = 120.0


def heartbeat_path(data_dir: str, process: int = 0) -> str:
    """The heartbeat file of delivery process `process` (0 to RECEIVER_DELIVERY_PROCESSES-1)."""
    name = HEARTBEAT_FILE if process == 0 else f"delivery-{process}.heartbeat"
    return os.path.join(data_dir, name)


def beat(data_dir: str, now: float | None = None, process: int = 0) -> bool:
    """Record that the delivery worker is polling. False (and no exception) if it can't."""
    path = heartbeat_path(data_dir, process)
    times = None if now is None else (now, now)
    try:
        try:
            os.utime(path, times)
        except FileNotFoundError:
            with open(path, "w", encoding="ascii") as f:
                f.write(f"{os.getpid()}\n")
            os.utime(path, times)
    except OSError as e:
        log.debug("heartbeat_failed path=%s error=%s", path, e)
        return False
    return True


def heartbeat_age(data_dir: str, now: float | None = None, process: int = 0) -> float | None:
    """Seconds since the last beat, or None if the worker has never beaten here."""
    try:
        mtime = os.stat(heartbeat_path(data_dir, process)).st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)


def stalest_age(data_dir: str, processes: int, now: float | None = None) -> float | None:
    """The oldest of the delivery processes' heartbeats; None if one has never beaten."""
    now = time.time() if now is None else now
    ages = [heartbeat_age(data_dir, now, i) for i in range(processes)]
    return None if None in ages else max(a for a in ages if a is not None)


def probe_write(data_dir: str) -> str | None:
    """Write and fsync a small file in the data dir: None if that works, else why not.

    SQLite can open and lock a database on a read-only or full disk; only a write
    shows that the outbox can take the next alert.
    """
    path = os.path.join(data_dir, PROBE_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{time.time():.3f}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        return f"cannot write to {data_dir}: {e.strerror or e}"
    return None
