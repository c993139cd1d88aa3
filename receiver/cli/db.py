"""`dingtalk-receiver db status|upgrade`: the stores' schema versions, and upgrading them.

`serve` upgrades at start on its own (receiver.storage.migrations); these commands are
for an upgrade run by hand before the new version starts, and for seeing where each
store stands. With SQLite each store is its own file in RECEIVER_DATA_DIR.
"""

from __future__ import annotations

import os

import click

from receiver.delivery.limits import LIMITS_SCHEMA
from receiver.delivery.outbox_schema import OUTBOX_SCHEMA
from receiver.dingtalk.tokenstore import TOKENS_SCHEMA
from receiver.directory.store import DIRECTORY_SCHEMA
from receiver.errors import OutboxUnavailable
from receiver.settings import Settings
from receiver.storage.migrations import Schema
from receiver.storage.sqlite import file_status, upgrade_file

# Each store and its file in RECEIVER_DATA_DIR.
STORES: tuple[tuple[Schema, str], ...] = (
    (OUTBOX_SCHEMA, "outbox.sqlite3"),
    (LIMITS_SCHEMA, "limits.sqlite3"),
    (TOKENS_SCHEMA, "tokens.sqlite3"),
    (DIRECTORY_SCHEMA, "directory.sqlite3"),
)
PRIVATE = {"tokens.sqlite3"}  # live tokens: mode 0600, as the token store makes it


def _data_dir() -> str:
    try:
        return Settings.from_env().data_dir
    except ValueError as e:
        raise click.ClickException(str(e)) from None


@click.group("db")
def db() -> None:
    """Schema versions of the stores: see them, upgrade them."""


@db.command("status")
def db_status() -> None:
    """Each store's schema version and what an upgrade would do; exit 1 if anything."""
    data_dir = _data_dir()
    behind = False
    for schema, filename in STORES:
        path = os.path.join(data_dir, filename)
        try:
            st = file_status(path, schema)
        except OutboxUnavailable as e:
            raise click.ClickException(str(e)) from None
        at = f"(schema {schema.digest()}, migration {st.current} of {schema.version})"
        if not os.path.exists(path):
            said = "not created yet: the first start or `db upgrade` creates it"
        elif st.pending:
            said = f"pending: {'; '.join(st.pending)}"
        else:
            said = f"up to date {at}"
        click.echo(f"{schema.store}: {path}: {said}")
        behind = behind or bool(st.pending)
    raise SystemExit(1 if behind else 0)


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply what is pending to every store, under each store's lock."""
    data_dir = _data_dir()
    os.makedirs(data_dir, exist_ok=True)
    for schema, filename in STORES:
        path = os.path.join(data_dir, filename)
        if filename in PRIVATE:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            did = upgrade_file(path, schema)
        except OutboxUnavailable as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"{schema.store}: {path}: {'; '.join(did) if did else 'up to date'}")
