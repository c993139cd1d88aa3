"""A delivery worker's loop run on a thread of its own, for the tests that watch it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from receiver.delivery.worker import Worker
from tests.fakes.dingtalk import FakeDingTalk

GENEROUS_S = 30.0  # how long a test waits for what should take milliseconds


@contextmanager
def running(w: Worker) -> Iterator[None]:
    """`w.run` on a thread; stopped, and found stopped, on the way out."""
    t = threading.Thread(target=w.run)
    t.start()
    try:
        yield
    finally:
        w.stop()  # wakes any wait: run returns without waiting it out
        t.join(GENEROUS_S)
    assert not t.is_alive()


def wait_for_calls(fake: FakeDingTalk, n: int, deadline: float) -> None:
    """Until the fake DingTalk has `n` sends, or `deadline` (time.monotonic()) passes."""
    while time.monotonic() < deadline and len(fake.delivered()) < n:
        time.sleep(0.01)
