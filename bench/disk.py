"""The floor under ingest: one SQLite commit on this disk, as the outbox makes it.

A 2xx waits for a durable commit (WAL, synchronous=FULL: an fsync per commit), so
ingest latency can never beat this disk. synchronous=NORMAL is measured beside it
only to show what the fsync costs; it is not durable against power loss.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from .common import pct

COMMITS = 300


def _commits(path: Path, synchronous: str) -> list[float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, msg TEXT)")
    out = []
    for _ in range(COMMITS):
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (msg) VALUES (?)", ("x" * 1500,))
        db.execute("COMMIT")
        out.append((time.perf_counter() - t0) * 1000)
    db.close()
    return out


def measure(tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"commits": COMMITS}
    for sync in ("FULL", "NORMAL"):
        ms = _commits(tmp / f"floor-{sync}.sqlite3", sync)
        out[sync.lower()] = {"p50_ms": round(pct(ms, 50) or 0, 2),
                             "p99_ms": round(pct(ms, 99) or 0, 2)}  # fmt: skip
    return out
