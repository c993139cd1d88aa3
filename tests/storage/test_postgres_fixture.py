"""The throwaway PostgreSQL the storage tests run on: a real server, a database per test."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import _require_postgres
from tests.pg import PostgresServer


def test_each_test_gets_an_empty_database_of_its_own(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    assert postgres_url.startswith("postgresql://postgres@127.0.0.1:")
    with psycopg.connect(postgres_url) as db:
        tables = db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema='public'"
        ).fetchone()
        version = db.execute("SHOW server_version_num").fetchone()
    assert tables == (0,)
    assert version is not None and int(version[0]) >= 130000
    assert postgres_server.running()


def test_a_missing_postgres_skips_or_fails_under_require_e2e(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("tests.pg.BIN_GLOB", str(tmp_path / "nothing" / "*" / "bin"))
    monkeypatch.delenv("RECEIVER_REQUIRE_E2E", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _require_postgres()
    monkeypatch.setenv("RECEIVER_REQUIRE_E2E", "1")
    with pytest.raises(pytest.fail.Exception, match="RECEIVER_REQUIRE_E2E=1"):
        _require_postgres()
