"""Defects found in review of the renderer: each test failed before its fix."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from receiver.messages.filters import md
from receiver.messages.render import Renderer
from tests.render_support import NOW, am, body


def test_md_escapes_an_ordered_list_marker_with_a_visible_result() -> None:
    # CommonMark escapes only ASCII punctuation: "\1." shows its backslash and
    # "1)" starts a list just as "1." does. The marker's punctuation is escaped.
    assert md("1. Disk full") == "1\\. Disk full"
    assert md("12) Disk full") == "12\\) Disk full"
    assert md("3.") == "3\\."
    # Not a list marker (no blank after it): left as written, no stray backslash.
    assert md("10.0.0.1:9100") == "10.0.0.1:9100"
    assert md("2)x") == "2)x"


class _Hung(BaseException):
    """Not an Exception: the renderer's fallback must not be what stops the test."""


@contextmanager
def _at_most(seconds: float) -> Iterator[None]:
    def stop(signum: int, frame: object) -> None:
        raise _Hung(f"the render ran for more than {seconds}s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


RUNAWAY = {
    "nested loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "recursive loop": (
        "{% for i in range(100000) recursive %}{{ loop(range(100000)) if loop.depth == 1 }}"
        "{% endfor %}"
    ),
    "huge output": '{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}',
    "huge string": '{{ ("x" * 10 ** 8) | length }}',
}


@pytest.mark.parametrize("source", RUNAWAY.values(), ids=RUNAWAY.keys())
def test_a_runaway_template_is_stopped_and_falls_back(tmp_path: Path, source: str) -> None:
    (tmp_path / "runaway.md.j2").write_text(source, encoding="utf-8")
    r = Renderer(str(tmp_path))
    with _at_most(5):
        m = r.render(am("am-firing-1"), template="runaway.md.j2", now=NOW)
    assert m.fallback and m.size <= 2048
    assert "HighLatency" in body(m.msg)
