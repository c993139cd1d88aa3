"""`blocking` under gevent: a call's exception reaches its greenlet, and only there
(the hub's thread pool prints a traceback for every exception it sees, so a database
outage wrote one per webhook to serve's log beside the 503 it already logs)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
from gevent import monkey
monkey.patch_all()
from receiver.errors import OutboxUnavailable
from receiver.web.offload import blocking

def fails():
    raise OutboxUnavailable("the database is down")

for _ in range(3):
    try:
        blocking(fails)
    except OutboxUnavailable as e:
        print("caught:", e)
print("sum:", blocking(sum, [1, 2, 3]))
"""


def test_an_exception_in_the_thread_is_raised_in_the_greenlet_without_a_traceback() -> None:
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    print(f"\nstdout:\n{run.stdout}stderr:\n{run.stderr}")
    assert run.returncode == 0
    assert run.stdout.count("caught: the database is down") == 3
    assert "sum: 6" in run.stdout
    assert "Traceback" not in run.stderr
