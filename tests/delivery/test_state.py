"""The routing table a process holds: a changed routing.yaml loads only once it settles."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from receiver.delivery.state import State
from receiver.errors import ConfigError
from receiver.settings import Settings
from tests.conftest import SIMPLE_ROUTING

FULL = SIMPLE_ROUTING.read_text().replace("bob: user0002", "bob: user0099")
# The first chunk of FULL is valid YAML on its own: a table without the child route,
# so team=db alerts would go to the root receiver (ops) while it is loaded.
HALF = FULL[: FULL.index("  routes:")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def routes(state: State) -> int:
    return sum(1 for _ in state.table.route.walk())


def test_a_file_written_in_two_chunks_is_never_loaded_half_written(
    settings: Settings, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(SIMPLE_ROUTING.read_text())
    clock = Clock()
    state = State(settings.with_(routing=str(routing), reload_settle=2.0), clock=clock)
    seen: list[tuple[float, int, str]] = []

    def poll(seconds: float) -> None:
        clock.now += seconds
        state.poll()
        seen.append((clock.now - 1000, routes(state), state.table.users["bob"]))

    with routing.open("w") as f:  # an editor, or cp, writing the file in two pieces
        f.write(HALF)
        f.flush()
        poll(1.0)
        poll(1.0)  # 2 s into the write, and the first chunk is still all there is
        f.write(FULL[len(HALF) :])
    poll(1.0)
    assert routes(state) == 2 and state.table.users["bob"] == "user0002"
    poll(1.0)
    poll(1.0)  # unchanged for 2 s: loaded
    print(f"\n(seconds, routes, bob's userid) after each poll: {seen}")
    assert all(n == 2 for _, n, _ in seen), "the half-written file was loaded"
    assert state.table.users["bob"] == "user0099"


def test_a_file_last_written_a_settle_period_ago_loads_at_the_first_poll_that_sees_it(
    settings: Settings, tmp_path: Path
) -> None:
    """The idle delivery process polls only when woken or every few seconds: an edit
    made before it looked must be in the table it plans the next webhook with."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(SIMPLE_ROUTING.read_text())
    clock = Clock()
    state = State(settings.with_(routing=str(routing), reload_settle=2.0), clock=clock)
    routing.write_text(FULL)
    clock.now += 1.0
    state.poll()
    assert state.table.users["bob"] == "user0002"  # just written: it may still be writing
    written = time.time() - 2.5
    os.utime(routing, (written, written))  # as if written 2.5 s before this poll
    clock.now += 1.0
    state.poll()
    assert state.table.users["bob"] == "user0099"


def test_a_refused_file_says_which_table_serves(settings: Settings, tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(SIMPLE_ROUTING.read_text())
    clock = Clock()
    state = State(settings.with_(routing=str(routing), reload_settle=2.0), clock=clock)
    assert state.status()["ok"] is True
    routing.write_text(SIMPLE_ROUTING.read_text().replace("receiver: db\n", "receiver: nobody\n"))
    clock.now += 1
    state.poll()
    assert state.status()["settling"] is True and state.status()["ok"] is True
    for _ in range(3):
        clock.now += 1
        state.poll()
    status = state.status()
    print(f"\n/readyz config while the file is refused: {status}")
    assert status["ok"] is False
    assert "refused" in status["error"] and status["loaded_at"] in status["error"]
    assert any("nobody" in p for p in status["problems"])
    routing.write_text(SIMPLE_ROUTING.read_text())
    for _ in range(3):
        clock.now += 1
        state.poll()
    assert state.status()["ok"] is True and "problems" not in state.status()


def test_a_reload_that_names_a_missing_template_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    """serve refuses to start on it; a reload must refuse it too, not page with the fallback."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(SIMPLE_ROUTING.read_text())
    state = State(settings.with_(routing=str(routing)))
    good = state.table
    text = SIMPLE_ROUTING.read_text()
    assert "- name: db\n" in text
    routing.write_text(text.replace("- name: db\n", "- name: db\n    template: nosuch.md.j2\n"))
    with pytest.raises(ConfigError) as e:
        state.reload()
    print(f"\nrefused: {e.value.problems}")
    assert any("nosuch.md.j2" in str(p) and "not found" in str(p) for p in e.value.problems)
    assert state.table is good and state.status()["ok"] is False
    routing.write_text(SIMPLE_ROUTING.read_text())
    state.reload()
    assert state.status()["ok"] is True
