"""Versioned migrations on SQLite files: applied once, under the lock, old files caught up."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from receiver.cli import main
from receiver.delivery.outbox import Outbox
from receiver.delivery.outbox_schema import COLUMNS
from receiver.storage.migrations import Migration, Schema
from receiver.storage.sqlite import connect, file_status
from tests.conftest import Engine

TABLES = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, a TEXT)"


def schema(*migrations: Migration, columns: dict[str, str] | None = None) -> Schema:
    return Schema("test", tables=(TABLES,), columns={"t": columns or {}}, migrations=migrations)


# Not idempotent on purpose: a second run fails (duplicate column, unique id).
M1 = Migration(
    1, "t gets b", "ALTER TABLE t ADD COLUMN b TEXT; INSERT INTO t (id, a) VALUES (1, 'x')"
)
M2 = Migration(2, "b filled", "UPDATE t SET b = upper(a)")


def test_numbered_migrations_run_once_in_order(engine: Engine) -> None:
    assert engine.upgrade(schema(M2, M1)) == [
        "tables, columns and indexes " + schema(M2, M1).digest(), "1 t gets b", "2 b filled",
    ]  # fmt: skip
    assert engine.upgrade(schema(M1, M2)) == []
    assert engine.rows("SELECT id, a, b FROM t") == [(1, "x", "X")]
    st = engine.status(schema(M1, M2))
    assert (st.current, st.pending, sorted(st.applied)) == (2, [], [0, 1, 2])


def test_status_says_what_an_upgrade_would_do_and_changes_nothing(engine: Engine) -> None:
    assert engine.status(schema(M1)).pending  # nothing there yet, and status creates nothing
    engine.upgrade(schema(M1))
    newer = schema(M1, M2, columns={"c": "INTEGER"})  # a release later: a column, a step
    st = engine.status(newer)
    assert st.pending == [f"tables, columns and indexes {newer.digest()}", "2 b filled"]
    assert engine.status(newer).pending == st.pending  # status wrote nothing
    assert engine.upgrade(newer) == [
        f"tables, columns and indexes {newer.digest()}",
        "column t.c",
        "2 b filled",
    ]
    assert engine.status(newer).pending == []


def test_status_of_a_file_creates_none(tmp_path: Path) -> None:
    assert file_status(str(tmp_path / "never.sqlite3"), schema(M1)).pending
    assert not os.path.exists(tmp_path / "never.sqlite3")


def test_processes_starting_together_run_each_step_once(engine: Engine) -> None:
    """Eight starters at once: the lock lets one upgrade; the rest find it done.

    (SQLite: the write lock, BEGIN IMMEDIATE; PostgreSQL: an advisory lock.)"""
    start = threading.Barrier(8)
    results: list[list[str] | BaseException] = []

    def starter() -> None:
        start.wait()
        try:
            results.append(engine.upgrade(schema(M1, M2)))
        except BaseException as e:  # reported by the assert below
            results.append(e)

    threads = [threading.Thread(target=starter) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(1 for r in results if r) == 1  # one did the work; seven found nothing to do
    assert engine.rows("SELECT count(*) FROM t") == [(1,)]


def test_a_new_file_turns_to_wal_once_another_writer_lets_go(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once, without its busy handler, while another
    connection is writing to the file: the flake of the test above, one start in 30."""
    path = str(tmp_path / "new.sqlite3")
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (a)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.2, writer.execute, ("COMMIT",)).start()
    db = connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [tuple(r) for r in db.execute("SELECT a FROM t")] == [(1,)]  # it waited
    db.close()
    writer.close()


OLD_OUTBOX = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    state TEXT NOT NULL, source TEXT NOT NULL, receiver TEXT NOT NULL, group_key TEXT NOT NULL,
    msg TEXT NOT NULL, userids TEXT NOT NULL, departments TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, lease_until REAL,
    task_ids TEXT, errcode INTEGER, last_error TEXT, sent_at REAL, owner TEXT
);
INSERT INTO outbox (created_at, updated_at, state, source, receiver, group_key, msg, userids,
    departments, next_attempt_at) VALUES (1, 1, 'queued', 'alertmanager', 'ops', 'g',
    '{"msgtype":"text","text":{"content":"x"}}', 'manager4220', '', 1);
"""


def test_an_outbox_file_from_before_migrations_is_caught_up(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        db.executescript(OLD_OUTBOX)
    (item,) = Outbox(str(tmp_path)).items()  # opening it upgrades it, keeping the row
    assert item.userids == ("manager4220",) and item.hold_reason is None
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        have = {r[1] for r in db.execute("PRAGMA table_info(outbox)")}
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert set(COLUMNS) <= have and {"pending", "seen", "schema_migrations"} <= tables


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def test_db_status_and_upgrade(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    res = runner.invoke(main, ["db", "status"])
    assert res.exit_code == 1 and res.output.count("not created yet") == 5, res.output
    res = runner.invoke(main, ["db", "upgrade"])
    assert res.exit_code == 0, res.output
    assert f"outbox: {data / 'outbox.sqlite3'}: tables, columns and indexes" in res.output
    assert "column outbox.owner" in res.output
    assert os.stat(data / "tokens.sqlite3").st_mode & 0o777 == 0o600  # it holds live tokens
    res = runner.invoke(main, ["db", "upgrade"])
    assert res.output.count(": up to date") == 5, res.output
    res = runner.invoke(main, ["db", "status"])
    assert res.exit_code == 0 and res.output.count(": up to date (schema ") == 5, res.output


def test_db_and_outbox_commands_on_postgresql(
    runner: CliRunner, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_DATABASE_URL", postgres_url)
    res = runner.invoke(main, ["db", "status"])
    assert res.exit_code == 1 and res.output.count(": postgresql: pending: ") == 5, res.output
    res = runner.invoke(main, ["db", "upgrade"])
    assert res.exit_code == 0 and "column outbox.owner" in res.output, res.output
    res = runner.invoke(main, ["db", "status"])
    assert res.exit_code == 0 and res.output.count(": up to date (schema ") == 5, res.output
    res = runner.invoke(main, ["outbox", "list"])  # no file in the data dir: the database's
    assert res.exit_code == 0, res.output
