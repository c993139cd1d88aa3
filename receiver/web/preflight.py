"""What `serve` checks and takes before it touches anything in the data dir.

1. The port: a bind that fails (in use, not allowed) stops the start, naming the
   port and the setting that chose it, before anything is removed or created.
2. The data dir: an exclusive `flock` on `<data dir>/serve.lock`, held for as long
   as `serve` runs (its gunicorn workers inherit it). A second `serve` on the same
   data dir refuses, naming the data dir and the pid that holds it, instead of
   wiping the first one's metrics and sharing its outbox leases.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from typing import IO

LOCK_FILE = "serve.lock"


class PreflightError(Exception):
    """`serve` cannot start; the message says why and what to change."""


def check_bind(listen: str, setting: str) -> None:
    """Bind HOST:PORT once and let it go, as gunicorn is about to."""
    if listen.startswith("unix:"):
        return
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise PreflightError(
            f"{setting}={listen}: cannot resolve {host!r} ({e.strerror})"
        ) from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                why = f"port {port} on {host} is already in use"
            else:
                why = f"cannot listen on port {port} of {host}: {e.strerror}"
            raise PreflightError(
                f"{why} ({setting}={listen}); stop what holds it or choose another"
                " with --listen or RECEIVER_LISTEN"
            ) from None


def lock_data_dir(data_dir: str) -> IO[str]:
    """Hold `<data_dir>/serve.lock` until the process (and its forks) exit."""
    path = os.path.join(os.path.abspath(data_dir), LOCK_FILE)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process' life
    except OSError as e:
        raise PreflightError(
            f"RECEIVER_DATA_DIR={data_dir}: cannot use it ({e.strerror})"
        ) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise PreflightError(
            f"another dingtalk-receiver serve (pid {holder}) is running on the data dir"
            f" {os.path.dirname(path)}; stop it first, or give this one its own"
            " RECEIVER_DATA_DIR"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f
