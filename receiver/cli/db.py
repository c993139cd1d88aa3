"""`dingtalk-receiver db status|upgrade`: the stores' schema versions, and upgrading them.

`serve` upgrades at start on its own (receiver.storage.migrations); these commands are
for an upgrade run by hand before the new version starts, and for seeing where each
store stands. With SQLite each store is its own file in RECEIVER_DATA_DIR; with
RECEIVER_DATABASE_URL they are tables in that one PostgreSQL database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import click

from receiver.delivery.limits import LIMITS_SCHEMA
from receiver.delivery.outbox_schema import OUTBOX_SCHEMA
from receiver.dingtalk.tokenstore import TOKENS_SCHEMA
from receiver.directory.store import DIRECTORY_SCHEMA
from receiver.errors import OutboxUnavailable
from receiver.robots.limiter import ROBOT_LIMITS_SCHEMA
from receiver.settings import Settings
from receiver.storage.migrations import Schema
from receiver.storage.postgres import PgDatabase, database, database_status, upgrade_database
from receiver.storage.sqlite import file_status, upgrade_file

# Each store and its file in RECEIVER_DATA_DIR.
STORES: tuple[tuple[Schema, str], ...] = (
    (OUTBOX_SCHEMA, "outbox.sqlite3"),
    (LIMITS_SCHEMA, "limits.sqlite3"),
    (ROBOT_LIMITS_SCHEMA, "limits.sqlite3"),
    (TOKENS_SCHEMA, "tokens.sqlite3"),
    (DIRECTORY_SCHEMA, "directory.sqlite3"),
)
PRIVATE = {"tokens.sqlite3"}  # live tokens: mode 0600, as the token store makes it


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as e:
        raise click.ClickException(str(e)) from None


def _stores(settings: Settings) -> Iterator[tuple[Schema, str, str | None]]:
    """(schema, where it is, the SQLite path or None for PostgreSQL)."""
    for schema, filename in STORES:
        if settings.database_url:
            yield schema, "postgresql", None
        else:
            path = os.path.join(settings.data_dir, filename)
            yield schema, path, path


@click.group("db")
def db() -> None:
    """Schema versions of the stores: see them, upgrade them."""


@db.command("status")
def db_status() -> None:
    """Each store's schema version and what an upgrade would do; exit 1 if anything."""
    settings = _settings()
    behind = False
    for schema, where, path in _stores(settings):
        try:
            st = file_status(path, schema) if path else database_status(_pg(settings), schema)
        except OutboxUnavailable as e:
            raise click.ClickException(str(e)) from None
        at = f"(schema {schema.digest()}, migration {st.current} of {schema.version})"
        if path and not os.path.exists(path):
            said = "not created yet: the first start or `db upgrade` creates it"
        elif st.pending:
            said = f"pending: {'; '.join(st.pending)}"
        else:
            said = f"up to date {at}"
        click.echo(f"{schema.store}: {where}: {said}")
        behind = behind or bool(st.pending)
    raise SystemExit(1 if behind else 0)


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply what is pending to every store, under each store's lock."""
    settings = _settings()
    if not settings.database_url:
        os.makedirs(settings.data_dir, exist_ok=True)
    for schema, where, path in _stores(settings):
        if path and os.path.basename(path) in PRIVATE:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            did = upgrade_file(path, schema) if path else upgrade_database(_pg(settings), schema)
        except OutboxUnavailable as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"{schema.store}: {where}: {'; '.join(did) if did else 'up to date'}")


def _pg(settings: Settings) -> PgDatabase:
    assert settings.database_url
    return database(settings.database_url)
