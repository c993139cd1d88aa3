"""The directory store: exact look-ups for routing.yaml, loose search for `users find`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from receiver.directory.pg import open_store
from receiver.directory.store import (
    Department,
    DirectoryStore,
    User,
    normalize_mobile,
    open_directory,
)
from receiver.errors import ReceiverError
from tests.conftest import Engine

PEOPLE = [
    User("manager4220", "张三", "13800000001", "Alice@Example.com", "DBA lead", (2, 5)),
    User("user0002", "Bob", "13900000002", "bob@example.com", "", (3,)),
    User(
        "user0003",
        "Carol",
        "4155550100",
        "carol@corp.example",
        keys=(("mobile", "14155550100"), ("email", "carol@corp.example")),
    ),
    User("user0004", "李四", "13700000004", departments=(4,)),
    User("user0005", "李四", "13700000005", departments=(5,), active=False),
    User("pct", "100% Bob_", "", "odd@example.com"),
]
DEPTS = [Department(1, "", None), Department(2, "Engineering", 1), Department(5, "SRE", 3)]


@pytest.fixture
def store(engine: Engine) -> DirectoryStore:
    """The same directory on each engine: a SQLite file, or a PostgreSQL database."""
    s = open_store(engine.data_dir, engine.database_url)
    s.replace(DEPTS, PEOPLE, now=1_700_000_000.0)
    return s


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("13800000001", "13800000001"),
        ("+86 138 0000 0001", "13800000001"),
        ("+86-138-0000-0001", "13800000001"),
        ("0086 13800000001", "13800000001"),
        ("8613800000001", "13800000001"),
        ("(138) 0000-0001", "13800000001"),
        ("+1 415 555 0100", "14155550100"),
        ("4155550100", "4155550100"),
        ("", ""),
    ],
)
def test_mobile_normalisation(text: str, expected: str) -> None:
    assert normalize_mobile(text) == expected


@pytest.mark.parametrize(
    ("field", "value", "userids"),
    [
        ("mobile", "13800000001", ["manager4220"]),
        ("mobile", "+86 138-0000-0001", ["manager4220"]),
        ("mobile", "+1 (415) 555-0100", ["user0003"]),
        ("mobile", "4155550100", ["user0003"]),
        ("mobile", "13800000009", []),
        ("email", "alice@example.com", ["manager4220"]),
        ("email", "  ALICE@EXAMPLE.COM ", ["manager4220"]),
        ("email", "carol@corp.example", ["user0003"]),
        ("email", "nobody@example.com", []),
        ("name", "张三", ["manager4220"]),
        ("name", " Bob ", ["user0002"]),
        ("name", "bob", []),  # names are exact
        ("name", "李四", ["user0004", "user0005"]),  # ambiguous: both, for routing to report
        ("name", "", []),
    ],
)
def test_find_is_exact(store: DirectoryStore, field: str, value: str, userids: list[str]) -> None:
    assert store.find(field, value) == userids


def test_find_rejects_an_unknown_field(store: DirectoryStore) -> None:
    with pytest.raises(ValueError, match="unknown directory field 'phone'"):
        store.find("phone", "13800000001")


def test_get_round_trips_every_stored_field(store: DirectoryStore) -> None:
    alice = store.get("manager4220")
    assert alice == PEOPLE[0]
    assert alice is not None and alice.departments == (2, 5) and alice.active
    lisi_b = store.get("user0005")
    assert lisi_b is not None and lisi_b.active is False
    assert store.get("nobody") is None


@pytest.mark.parametrize(
    ("text", "userids"),
    [
        ("bob", ["pct", "user0002"]),  # name, case-insensitive substring
        ("example.com", ["manager4220", "user0002", "pct"]),
        ("EXAMPLE.COM", ["manager4220", "user0002", "pct"]),
        ("0000 0001", ["manager4220"]),  # a piece of a mobile, spaces ignored
        ("+86 139", ["user0002"]),
        ("李", ["user0004", "user0005"]),
        ("user0003", ["user0003"]),  # an exact userid
        ("%", ["pct"]),  # LIKE wildcards are literal
        ("_", ["pct"]),
        ("nobody", []),
        ("   ", []),
    ],
)
def test_search(store: DirectoryStore, text: str, userids: list[str]) -> None:
    assert sorted(u.userid for u in store.search(text)) == sorted(userids)


def test_search_limit(store: DirectoryStore) -> None:
    assert len(store.search("example", limit=2)) == 2


def test_departments_and_counts(store: DirectoryStore) -> None:
    assert store.departments()[2] == Department(2, "Engineering", 1)
    assert store.counts() == (3, 6)
    assert store.synced_at() == 1_700_000_000.0


def test_nothing_synced_reads_as_empty_and_creates_no_file(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path / "data"))
    assert store.synced_at() is None
    assert store.find("name", "张三") == []
    assert store.search("a") == []
    assert store.get("manager4220") is None
    assert store.counts() == (0, 0)
    assert open_directory(str(tmp_path / "data")) is None
    assert not os.path.exists(tmp_path / "data")


def test_open_directory_once_synced(tmp_path: Path) -> None:
    DirectoryStore(str(tmp_path / "data")).replace(DEPTS, PEOPLE, now=1_700_000_000.0)
    opened = open_directory(str(tmp_path / "data"))
    assert opened is not None and opened.find("name", "Bob") == ["user0002"]


def test_replace_swaps_everything(store: DirectoryStore) -> None:
    store.replace([Department(1, "", None)], [User("new1", "New", "13100000000")], now=2e9)
    assert store.find("name", "张三") == []
    assert store.find("mobile", "+86 131 0000 0000") == ["new1"]
    assert store.counts() == (1, 1)
    assert store.synced_at() == 2e9


def test_a_failed_replace_keeps_the_old_directory(store: DirectoryStore) -> None:
    duplicate = [User("x", "X"), User("x", "X again")]  # primary key clash halfway through
    with pytest.raises(ReceiverError, match="directory store"):
        store.replace(DEPTS, duplicate, now=2e9)
    assert store.find("name", "张三") == ["manager4220"]
    assert store.counts() == (3, 6)
    assert store.synced_at() == 1_700_000_000.0


def test_a_second_store_on_the_same_dir_sees_the_swap(
    store: DirectoryStore, engine: Engine
) -> None:
    other = open_store(os.path.dirname(store.path), engine.database_url)  # another process
    assert other.find("email", "bob@example.com") == ["user0002"]
    store.replace(DEPTS, [User("user0009", "Bob", "", "bob@example.com")], now=2e9)
    assert other.find("email", "bob@example.com") == ["user0009"]


def test_describe_lists_candidates(store: DirectoryStore) -> None:
    # what routing shows when {name: 李四} matches two people
    assert store.describe(store.find("name", "李四")) == (
        "user0004 (李四, 4); user0005 (李四, SRE, inactive)"
    )
    assert store.describe(["gone"]) == "gone"
