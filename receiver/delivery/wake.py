"""Waking the delivery process when there is work, instead of it polling every 50 ms.

The delivery process binds a UNIX datagram socket in the data dir (`delivery.sock`)
and waits on it with select(); whatever commits work for it (a web worker accepting
a webhook, an acknowledgement's messages, an escalation step, a console retry) sends
it one byte once the commit is on disk. Nobody waits for an answer: a full socket
queue means a wake-up is already on its way, and no socket (no delivery process yet)
means there is nobody to wake. Without the socket (a data dir whose path is too long
for AF_UNIX, a file system that refuses sockets) the delivery process polls as before.

With RECEIVER_DELIVERY_PROCESSES above 1, process i binds `delivery-i.sock` (process 0
keeps `delivery.sock`) and a poke goes to each: `configure` says how many there are.
A second delivery process of the same number on the same data dir takes the socket
over; the first then finds work on its slow poll only. Anyone who can write to the
data dir can wake it: the worst a stray byte does is one look at an empty outbox.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading

log = logging.getLogger(__name__)

NAME = "delivery.sock"
MAX_PATH_BYTES = 107  # sockaddr_un's sun_path, less its terminating NUL

_sender: dict[int, socket.socket] = {}  # pid -> this process's sending socket
_lock = threading.Lock()
_noted = threading.local()  # this thread's transaction queued items
_processes = 1  # delivery processes to wake (RECEIVER_DELIVERY_PROCESSES)


def configure(processes: int) -> None:
    """How many delivery processes listen (from settings), so that a poke reaches all."""
    global _processes
    _processes = processes


def path(data_dir: str, process: int = 0) -> str:
    return os.path.join(data_dir, NAME if process == 0 else f"delivery-{process}.sock")


def poke(data_dir: str) -> None:
    """Wake the delivery process of `data_dir`, if one listens; never blocks, never raises."""
    pid = os.getpid()
    sock = _sender.get(pid)
    if sock is None:
        with _lock:
            sock = _sender.get(pid)
            if sock is None:  # a new one after a fork: never share one with the parent
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                _sender.clear()
                _sender[pid] = sock
    for process in range(_processes):
        try:
            sock.sendto(b"\0", path(data_dir, process))
        except OSError:  # nobody listens, the queue is full (a wake-up is pending), a long path
            pass


def note_items() -> None:
    """The current transaction queues items: poke once it commits (see `committed`)."""
    _noted.items = True


def committed(data_dir: str, ok: bool) -> None:
    """A transaction ended: if it committed items (`ok`), wake the delivery process."""
    noted = getattr(_noted, "items", False)
    _noted.items = False
    if noted and ok:
        poke(data_dir)


def until_due(due: float | None, now: float, *, most: float, overdue: float) -> float:
    """How long a loop with nothing to do sleeps: until just after `due` (5 ms, so that
    it is due then), `most` at most or when nothing is due; `overdue` when it already
    is (it was looked at and could not go yet)."""
    if due is None:
        return most
    left = due - now
    return min(most, left + 0.005) if left > 0 else overdue


class Wakeup:
    """The delivery process's end: a socket that `wait` returns from as soon as poked."""

    def __init__(self, data_dir: str, process: int = 0) -> None:
        self.path = path(data_dir, process)
        if len(os.fsencode(self.path)) > MAX_PATH_BYTES:
            raise OSError(f"{self.path} is longer than AF_UNIX allows")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            try:
                os.unlink(self.path)  # a socket left by a delivery process that died
            except FileNotFoundError:
                pass
            self.sock.bind(self.path)
            self.sock.setblocking(False)
            self.inode = os.stat(self.path).st_ino
        except OSError:
            self.sock.close()
            raise

    @classmethod
    def open(cls, data_dir: str, process: int = 0) -> Wakeup | None:
        """The socket, or None (logged) when it cannot be made: delivery then polls."""
        try:
            return cls(data_dir, process)
        except OSError as e:
            log.warning("wakeup_unavailable error=%s; delivery polls every 50 ms instead", e)
            return None

    def wait(self, timeout: float) -> bool:
        """Wait until poked or `timeout` seconds; True if poked. Every pending poke is taken."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        while True:
            try:
                self.sock.recv(64)
            except OSError:  # BlockingIOError: nothing more
                break
        return bool(ready)

    def poke(self) -> None:
        """Wake our own `wait` (to stop at once)."""
        try:
            self.sock.sendto(b"\0", self.path)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        try:
            if os.stat(self.path).st_ino == self.inode:  # not a successor's
                os.unlink(self.path)
        except OSError:
            pass
