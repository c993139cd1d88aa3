"""Versioned schema migrations, one mechanism for every store and both engines.

A store declares its `Schema`:

- `tables`: `CREATE TABLE/INDEX IF NOT EXISTS` scripts. Adding a table is adding one.
- `columns`: table -> {column: declaration}. Adding a column is adding an entry; a
  database that lacks it gets `ALTER TABLE … ADD COLUMN`.
- `migrations`: numbered steps for everything else (a table rebuilt, data moved, a
  column dropped). Each runs once, in version order, and is recorded.
- `indexes`: `CREATE INDEX IF NOT EXISTS`, run last, so a rebuilt table gets its back.

Tables, columns and indexes are idempotent: they are applied at every start (that is how
a database written by an older version catches up), and their digest is recorded as
version 0, so `dingtalk-receiver db status` can say whether this code would change
anything. Numbered migrations are recorded as (store, version) in `schema_migrations`.

Everything is applied under a lock, so two processes (or two replicas) starting at once
never run a step twice: SQLite holds its write lock (BEGIN IMMEDIATE) for the whole
upgrade, which runs in that one transaction; PostgreSQL takes `pg_advisory_lock` first.
The engines differ only in a `Dialect`; the runner is here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the runner needs of a connection: sqlite3's and psycopg's both have it."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


@dataclass(frozen=True)
class Migration:
    version: int  # 1, 2, …: the order, and the record
    name: str
    sql: str = ""  # statements separated by ";"
    run: Callable[[Any], None] | None = None  # or code, given the connection
    engines: tuple[str, ...] = ("sqlite", "postgresql")  # elsewhere: recorded, not run


@dataclass(frozen=True)
class Schema:
    store: str  # outbox, limits, tokens, directory
    tables: tuple[str, ...] = ()
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    migrations: tuple[Migration, ...] = ()
    indexes: str = ""

    def digest(self) -> str:
        """What tables, columns and indexes amount to: changes when one is added."""
        text = json.dumps(
            [self.tables, {t: dict(c) for t, c in self.columns.items()}, self.indexes],
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def version(self) -> int:
        """The newest numbered migration this code knows (0: none)."""
        return max((m.version for m in self.migrations), default=0)


class Dialect(Protocol):
    name: str
    param: str  # "?" or "%s"

    def columns(self, db: Any, table: str) -> set[str]: ...
    def ddl(self, sql: str) -> str: ...  # SQLite's DDL in this engine's words


MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    store TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (store, version)
)
"""


def statements(sql: str) -> list[str]:
    return [s for s in (part.strip() for part in sql.split(";")) if s]


@dataclass(frozen=True)
class Status:
    store: str
    applied: dict[int, tuple[str, float]]  # version -> (name, applied_at); 0: tables etc.
    pending: list[str]  # what an upgrade would do, in words

    @property
    def current(self) -> int:
        return max((v for v in self.applied if v > 0), default=0)


def applied(db: Any, dialect: Dialect, store: str) -> dict[int, tuple[str, float]]:
    rows = db.execute(
        f"SELECT version, name, applied_at FROM schema_migrations WHERE store={dialect.param}",
        (store,),
    ).fetchall()
    return {int(r[0]): (str(r[1]), float(r[2])) for r in rows}


def status(db: Any, dialect: Dialect, schema: Schema, *, has_table: bool) -> Status:
    """What is applied, and what an upgrade would do; changes nothing."""
    done = applied(db, dialect, schema.store) if has_table else {}
    pending = []
    base = done.get(0)
    if base is None or not base[0].endswith(schema.digest()):
        pending.append(f"tables, columns and indexes {schema.digest()}")
    for m in sorted(schema.migrations, key=lambda m: m.version):
        if m.version not in done:
            pending.append(f"{m.version} {m.name}")
    return Status(schema.store, done, pending)


def upgrade(db: Any, dialect: Dialect, schema: Schema, *, now: float | None = None) -> list[str]:
    """Bring the store up to date, inside the caller's transaction and lock.

    Returns what was done, in words ([] when it already was).
    """
    now = time.time() if now is None else now
    p = dialect.param
    db.execute(dialect.ddl(MIGRATIONS_TABLE))
    done = applied(db, dialect, schema.store)
    did: list[str] = []
    for script in schema.tables:
        for stmt in statements(dialect.ddl(script)):
            db.execute(stmt)
    for table, columns in schema.columns.items():
        have = dialect.columns(db, table)
        for name, decl in columns.items():
            if name not in have:
                db.execute(dialect.ddl(f"ALTER TABLE {table} ADD COLUMN {name} {decl}"))
                did.append(f"column {table}.{name}")
    for m in sorted(schema.migrations, key=lambda m: m.version):
        if m.version in done:
            continue
        if dialect.name in m.engines:
            for stmt in statements(dialect.ddl(m.sql)):
                db.execute(stmt)
            if m.run is not None:
                m.run(db)
        db.execute(
            f"INSERT INTO schema_migrations (store, version, name, applied_at)"
            f" VALUES ({p},{p},{p},{p})",
            (schema.store, m.version, m.name, now),
        )
        did.append(f"{m.version} {m.name}")
    for stmt in statements(dialect.ddl(schema.indexes)):
        db.execute(stmt)
    name = f"tables, columns and indexes {schema.digest()}"
    if done.get(0, ("", 0.0))[0] != name:
        db.execute(
            f"INSERT INTO schema_migrations (store, version, name, applied_at)"
            f" VALUES ({p},0,{p},{p}) ON CONFLICT (store, version)"
            f" DO UPDATE SET name=excluded.name, applied_at=excluded.applied_at",
            (schema.store, name, now),
        )
        did.insert(0, name)
    return did


class SqliteDialect:
    name = "sqlite"
    param = "?"

    def columns(self, db: Any, table: str) -> set[str]:
        return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}

    def ddl(self, sql: str) -> str:
        return sql


SQLITE = SqliteDialect()
