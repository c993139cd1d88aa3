"""serve's gunicorn worker: gevent's patching in the worker, after the arbiter imported ssl."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

# What a worker does after gunicorn forks it from the arbiter, which imported requests
# (and ssl) first: in a process of its own, since patching is for the whole process.
SCRIPT = """
import requests, sys
from receiver.web.worker import ReceiverWorker
worker = ReceiverWorker.__new__(ReceiverWorker)
worker.sockets = []
worker.patch()
import gevent.ssl, urllib3.util.ssl_
print(urllib3.util.ssl_.SSLContext is gevent.ssl.SSLContext,
      sys.modules["urllib3.util"].SSLContext is gevent.ssl.SSLContext)
"""


def test_urllib3_uses_gevents_ssl_once_the_worker_is_patched() -> None:
    # Without it, urllib3 kept ssl's classes from before the patch (its HTTPS would block
    # the loop), and gevent wrote a MonkeyPatchWarning into serve's log, not JSON.
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


FREEZE = """
import gc
from unittest import mock
from gunicorn.workers.base import Worker
from receiver.web.worker import ReceiverWorker
worker = ReceiverWorker.__new__(ReceiverWorker)
loaded = [{"a long-lived object": [n]} for n in range(5000)]  # what loading the app made
with mock.patch.object(Worker, "load_wsgi", lambda self: None):
    worker.load_wsgi()
print(gc.get_freeze_count() >= 5000)
"""


def test_what_the_worker_loaded_is_out_of_the_collectors_reach() -> None:
    # A full collection walked the routing table, the templates and the modules: 20-50 ms
    # with the worker's loop, and every request on it, standing still (bench/README.md).
    done = subprocess.run(
        [sys.executable, "-c", FREEZE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]
