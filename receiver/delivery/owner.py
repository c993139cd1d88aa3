"""Who holds a lease: a process named by host, pid and start time, and whether it still runs."""

from __future__ import annotations

import os
import socket


def _start_time(pid: int) -> str:
    """The pid's start time (Linux), or "" when it is gone or a zombie (killed, not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return ""
    return "" if fields[0] in {"Z", "X"} else fields[19]


def process_owner(pid: int | None = None) -> str:
    """Who holds a lease: host, pid and the pid's start time (pids are reused)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_is_dead(owner: str) -> bool:
    """True only when `owner` is a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host: only its lease can tell
    return process_owner(int(pid_text)) != owner
