from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask

from receiver.delivery.limits import Limits
from receiver.delivery.outbox import Outbox
from receiver.robots.limiter import RobotLimiter
from receiver.settings import Settings
from receiver.storage.migrations import Schema, Status
from receiver.storage.postgres import (
    close_database,
    database,
    database_status,
    upgrade_database,
)
from receiver.storage.sqlite import file_status, upgrade_file
from tests.fakes.dingtalk import APP_KEY, APP_SECRET, FakeDingTalk
from tests.fakes.robot import FakeRobot
from tests.pg import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SIMPLE_ROUTING = FIXTURES / "routing" / "simple.yaml"


@pytest.fixture(autouse=True)
def _private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test writes to the checkout's data/: a command that reads RECEIVER_DATA_DIR
    without the test setting it gets a folder of its own."""
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def fake_dingtalk() -> Iterator[FakeDingTalk]:
    fake = FakeDingTalk().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_robot() -> Iterator[FakeRobot]:
    """A fake DingTalk group robot API on loopback (tests/fakes/robot.py)."""
    fake = FakeRobot().start()
    yield fake
    fake.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Dry-run settings with a private data dir, a small fixed routing table, the templates."""
    return Settings(
        data_dir=str(tmp_path / "data"),
        routing=str(SIMPLE_ROUTING),
        templates=str(ROOT / "templates"),
    )


@pytest.fixture
def live_settings(settings: Settings, fake_dingtalk: FakeDingTalk) -> Settings:
    """Settings with credentials, pointed at the fake DingTalk."""
    return settings.with_(
        app_key=APP_KEY,
        app_secret=APP_SECRET,
        agent_id="424242",
        api_base=fake_dingtalk.url,
        http_timeout=5.0,
    )


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment under which a `dingtalk-receiver` process sees `settings`."""
    env = {
        "DINGTALK_APP_KEY": settings.app_key or "",
        "DINGTALK_APP_SECRET": settings.app_secret or "",
        "DINGTALK_APP_AGENT_ID": settings.agent_id or "",
        "DINGTALK_API_BASE": settings.api_base,
        "DINGTALK_PROXY": settings.proxy or "",
        "RECEIVER_DATA_DIR": settings.data_dir,
        "RECEIVER_ROUTING": settings.routing,
        "RECEIVER_TEMPLATES": settings.templates,
    }
    return {**env, **extra}


def plan_pending(app: Flask) -> int:
    """What the delivery process does first: route and render accepted webhooks into items."""
    from receiver.delivery.planner import Planner

    return Planner(app.extensions["receiver"]).run_once()


def require_binary(path: str) -> str:
    """Return the binary, or skip; with RECEIVER_REQUIRE_E2E=1 a missing binary fails."""
    found = shutil.which(path) or (path if os.path.exists(path) else None)
    if found:
        return found
    if os.environ.get("RECEIVER_REQUIRE_E2E") == "1":
        pytest.fail(f"{path} is required (RECEIVER_REQUIRE_E2E=1) but not installed")
    pytest.skip(f"{path} not installed")


def _require_postgres() -> None:
    """Skip without a PostgreSQL server installed; with RECEIVER_REQUIRE_E2E=1, fail."""
    from tests.pg import BIN_GLOB, find_bin

    if find_bin() is None:
        if os.environ.get("RECEIVER_REQUIRE_E2E") == "1":
            pytest.fail(f"PostgreSQL ({BIN_GLOB}/initdb) is required (RECEIVER_REQUIRE_E2E=1)")
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the session, stopped and removed at the end."""
    from tests.pg import remove, start_server

    _require_postgres()
    server = start_server()
    yield server
    remove(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database on the session's server for this test: its URL."""
    import psycopg

    name = f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url_for(name)
    close_database(postgres_server.url_for(name))
    with psycopg.connect(postgres_server.url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass(frozen=True)
class Engine:
    """Where a test's stores live: SQLite files in `data_dir`, or a PostgreSQL database."""

    name: str  # sqlite | postgresql
    data_dir: str
    database_url: str | None = None

    def outbox(self, **kw: Any) -> Outbox:
        return Outbox(self.data_dir, database_url=self.database_url, **kw)

    def robot_limiter(self, **kw: Any) -> RobotLimiter:
        os.makedirs(self.data_dir, exist_ok=True)
        path = os.path.join(self.data_dir, "limits.sqlite3")
        return RobotLimiter(path, database_url=self.database_url, **kw)

    def limits(self, **kw: Any) -> Limits:
        os.makedirs(self.data_dir, exist_ok=True)
        path = os.path.join(self.data_dir, "limits.sqlite3")
        return Limits(path, database_url=self.database_url, **kw)

    # -- a store of the test's own, for the migration tests: a file, or the database ----
    def upgrade(self, schema: Schema) -> list[str]:
        if self.database_url:
            return upgrade_database(database(self.database_url), schema)
        os.makedirs(self.data_dir, exist_ok=True)
        return upgrade_file(os.path.join(self.data_dir, f"{schema.store}.sqlite3"), schema)

    def status(self, schema: Schema) -> Status:
        if self.database_url:
            return database_status(database(self.database_url), schema)
        return file_status(os.path.join(self.data_dir, f"{schema.store}.sqlite3"), schema)

    def rows(self, sql: str, store: str = "test") -> list[tuple[Any, ...]]:
        if self.database_url:
            with psycopg.connect(self.database_url) as pg:
                return [tuple(r) for r in pg.execute(sql).fetchall()]
        with closing(sqlite3.connect(os.path.join(self.data_dir, f"{store}.sqlite3"))) as db:
            return [tuple(r) for r in db.execute(sql).fetchall()]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """The storage tests run once on each engine, on a real database each time."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return Engine(request.param, str(tmp_path / "data"), url)
