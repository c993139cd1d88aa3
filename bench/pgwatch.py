"""What a throwaway PostgreSQL does during a measurement: its connections and its CPU."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from tests.pg import PostgresServer
from tests.procs import descendants

from .common import cpu_s


class Connections:
    """The most client connections to `dbname` seen at once, sampled on a thread."""

    def __init__(self, server: PostgresServer, dbname: str) -> None:
        self.server, self.dbname, self.most = server, dbname, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psycopg

        with psycopg.connect(self.server.url, autocommit=True) as db:  # to `postgres`
            while not self._stop.is_set():
                row = db.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = %s AND backend_type = 'client backend'",
                    (self.dbname,),
                ).fetchone()
                self.most = max(self.most, int(row[0]) if row else 0)
                self._stop.wait(0.2)

    @contextlib.contextmanager
    def watching(self) -> Iterator[Connections]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(5)


class DatabaseCpu:
    """CPU the PostgreSQL server's processes (postmaster and backends) use from now on."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.start = self._each()

    def _each(self) -> dict[int, float]:
        try:
            with open(os.path.join(self.server.data, "postmaster.pid")) as f:
                postmaster = int(f.readline())
        except (OSError, ValueError):
            return {}
        return {pid: cpu_s([pid]) for pid in [postmaster, *descendants(postmaster)]}

    def used(self) -> float:
        """Seconds since this was made; a backend that exited meanwhile is not counted."""
        return sum(v - self.start.get(pid, 0.0) for pid, v in self._each().items())
