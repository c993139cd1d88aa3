"""The synced DingTalk directory: who is who, so routing.yaml can name people.

`DirectoryStore` keeps one SQLite file, `directory.sqlite3`, in RECEIVER_DATA_DIR.
A sync (receiver.directory.sync) fetches the whole directory into memory first and
then replaces every row in one transaction, so readers in other processes see the
old directory or the new one, never a mix, and a sync that fails keeps the old one.

Look-ups (`find`) are exact, as routing.yaml aliases need them:
- mobile: digits only, `+86`/`0086` and spaces, dashes and brackets ignored;
- email: case-insensitive (the personal and the organisation email both count);
- name: exact, after trimming spaces.
`search` is the loose one, for `dingtalk-receiver users find`.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from receiver.errors import ReceiverError
from receiver.storage.migrations import SQLITE, Schema, upgrade

FILENAME = "directory.sqlite3"
FIELDS = ("mobile", "email", "name")
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS departments (
    dept_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    parent_id INTEGER
);
CREATE TABLE IF NOT EXISTS users (
    userid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    mobile TEXT NOT NULL,
    email TEXT NOT NULL,
    title TEXT NOT NULL,
    departments TEXT NOT NULL,
    active INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lookup (field TEXT NOT NULL, key TEXT NOT NULL, userid TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS lookup_key ON lookup (field, key);
"""
DIRECTORY_SCHEMA = Schema("directory", tables=(SCHEMA,))


@dataclass(frozen=True)
class Department:
    dept_id: int
    name: str
    parent_id: int | None


@dataclass(frozen=True)
class User:
    userid: str
    name: str
    mobile: str = ""
    email: str = ""
    title: str = ""
    departments: tuple[int, ...] = ()
    active: bool = True
    # Extra look-up keys that are not shown: the organisation email, the mobile with
    # its country code. Not part of equality.
    keys: tuple[tuple[str, str], ...] = ()

    def lookup_keys(self) -> set[tuple[str, str]]:
        found = {("name", normalize("name", self.name))}
        found.add(("mobile", normalize("mobile", self.mobile)))
        found.add(("email", normalize("email", self.email)))
        found.update((f, normalize(f, v)) for f, v in self.keys)
        return {(f, k) for f, k in found if k}


@dataclass(frozen=True)
class SyncStats:
    departments: int
    users: int
    calls: int
    retries: int
    seconds: float
    with_mobile: int
    with_email: int


def normalize(field: str, value: str) -> str:
    """The form `find` compares: see the module docstring."""
    value = value.strip()
    if field == "email":
        return value.lower()
    if field == "mobile":
        return normalize_mobile(value)
    if field == "name":
        return value
    raise ValueError(f"unknown directory field {field!r}; expected one of {', '.join(FIELDS)}")


def normalize_mobile(value: str) -> str:
    international = value.strip().startswith(("+", "00"))
    digits = re.sub(r"\D", "", value)
    if digits.startswith("00"):
        digits = digits[2:]
    if digits.startswith("86") and len(digits) == 13 and (international or digits[2] == "1"):
        digits = digits[2:]
    return digits


class DirectoryStore:
    """The local copy of the DingTalk directory. Safe to use from several processes."""

    INSTR = "instr"  # where a text is found in another; PostgreSQL calls it strpos

    def __init__(self, data_dir: str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = os.path.join(data_dir, FILENAME)
        self.busy_timeout_ms = busy_timeout_ms

    def __repr__(self) -> str:
        return f"<DirectoryStore {self.path}>"

    def sync_lock(self) -> AbstractContextManager[bool]:
        """Held through a sync: True when this process may sync now. SQLite's write
        lock already makes two syncs take turns; PostgreSQL's store says no to a second."""
        return nullcontext(True)

    # -- connections: the one place sqlite3 errors are translated ----------------------------
    @contextmanager
    def _db(self, *, write: bool = False) -> Iterator[sqlite3.Connection | None]:
        """A connection, or None when there is nothing to read yet."""
        if not write and not os.path.exists(self.path):
            yield None
            return
        try:
            if write:
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000)) as db:
                db.row_factory = sqlite3.Row
                if write:
                    db.execute("PRAGMA journal_mode=WAL")
                    with db:  # under the write lock: two syncs may start at once
                        db.execute("BEGIN IMMEDIATE")
                        upgrade(db, SQLITE, DIRECTORY_SCHEMA)
                yield db
        except (sqlite3.Error, OSError) as e:
            raise ReceiverError(f"directory store {self.path}: {e}") from None

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._db() as db:
            if db is None:
                return []
            try:
                return list(db.execute(sql, tuple(args)))
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []
                raise

    # -- reading ----------------------------------------------------------------------------
    def synced_at(self) -> float | None:
        """When the last successful sync finished (epoch seconds), or None if never."""
        rows = self._rows("SELECT value FROM meta WHERE key = 'synced_at'")
        return float(rows[0]["value"]) if rows else None

    def find(self, field: str, value: str) -> list[str]:
        """Userids whose `field` (mobile, email or name) is `value`; [] when none."""
        key = normalize(field, value)
        if not key:
            return []
        rows = self._rows(
            "SELECT DISTINCT userid FROM lookup WHERE field = ? AND key = ? ORDER BY userid",
            (field, key),
        )
        return [str(r["userid"]) for r in rows]

    def get(self, userid: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE userid = ?", (userid,))
        return _user(rows[0]) if rows else None

    def users(self, userids: Iterable[str]) -> list[User]:
        """The users with these userids, in that order; unknown ones are left out."""
        found = [self.get(u) for u in userids]
        return [u for u in found if u is not None]

    def describe(self, userids: Iterable[str]) -> str:
        """`userid (name, departments)` for each: the candidates of an ambiguous name."""
        names = {d.dept_id: d.name or "(root)" for d in self.departments().values()}
        out = []
        for userid in userids:
            u = self.get(userid)
            if u is None:
                out.append(userid)
                continue
            about = [u.name, *(names.get(d, str(d)) for d in u.departments)]
            out.append(f"{userid} ({', '.join(about)}{'' if u.active else ', inactive'})")
        return "; ".join(out)

    def search(self, text: str, limit: int = 50) -> list[User]:
        """People whose name, email or mobile contains `text` (case-insensitive)."""
        text = text.strip()
        if not text:
            return []
        like = "%" + re.sub(r"([\\%_])", r"\\\1", text.lower()) + "%"
        digits = ""
        if re.fullmatch(r"[\d\s+()-]+", text):  # a piece of a mobile, maybe with +86
            digits = re.sub(r"\D", "", re.sub(r"^\s*(\+|00)86", "", text))
        rows = self._rows(
            f"""SELECT * FROM users WHERE lower(name) LIKE ? ESCAPE '\\'
                 OR lower(email) LIKE ? ESCAPE '\\' OR userid = ?
                 OR userid IN (SELECT userid FROM lookup WHERE field = 'mobile'
                               AND ? != '' AND {self.INSTR}(key, ?) > 0)
               ORDER BY name, userid LIMIT ?""",
            (like, like, text, digits, digits, limit),
        )
        return [_user(r) for r in rows]

    def departments(self) -> dict[int, Department]:
        rows = self._rows("SELECT * FROM departments ORDER BY dept_id")
        return {
            int(r["dept_id"]): Department(int(r["dept_id"]), r["name"], r["parent_id"])
            for r in rows
        }

    def counts(self) -> tuple[int, int]:
        """(departments, users) in the synced directory."""
        d = self._rows("SELECT count(*) AS n FROM departments")
        u = self._rows("SELECT count(*) AS n FROM users")
        return (int(d[0]["n"]) if d else 0, int(u[0]["n"]) if u else 0)

    # -- writing ----------------------------------------------------------------------------
    def replace(
        self, departments: Iterable[Department], users: Iterable[User], *, now: float | None = None
    ) -> None:
        """Swap in a whole new directory, in one transaction: all of it or none of it."""
        with self._db(write=True) as db:
            assert db is not None
            with db:  # one transaction; rolled back on any error
                db.execute("BEGIN IMMEDIATE")
                self._write(db, departments, users, now)

    @staticmethod
    def _write(db: Any, departments: Iterable[Department], users: Iterable[User],
               now: float | None) -> None:  # fmt: skip
        """Every row of a new directory, in the caller's transaction (either engine)."""
        for table in ("lookup", "users", "departments"):
            db.execute(f"DELETE FROM {table}")
        db.executemany(
            "INSERT INTO departments VALUES (?, ?, ?)",
            [(d.dept_id, d.name, d.parent_id) for d in departments],
        )
        for u in users:
            db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    u.userid,
                    u.name,
                    u.mobile,
                    u.email,
                    u.title,
                    json.dumps(list(u.departments)),
                    int(u.active),
                ),
            )
            db.executemany(
                "INSERT INTO lookup VALUES (?, ?, ?)",
                [(f, k, u.userid) for f, k in sorted(u.lookup_keys())],
            )
        db.executemany(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            [
                ("synced_at", repr(time.time() if now is None else now)),
                ("schema", str(SCHEMA_VERSION)),
            ],
        )


def open_directory(data_dir: str) -> DirectoryStore | None:
    """The synced directory for `load_routing(path, directory=...)`, or None if never synced."""
    store = DirectoryStore(data_dir)
    return store if store.synced_at() is not None else None


def _user(row: sqlite3.Row) -> User:
    return User(
        userid=row["userid"],
        name=row["name"],
        mobile=row["mobile"],
        email=row["email"],
        title=row["title"],
        departments=tuple(int(d) for d in json.loads(row["departments"])),
        active=bool(row["active"]),
    )
