"""Blocking work off the gevent loop: SQLite reads and commits (with fsync).

Under serve's gevent worker (receiver.web.worker) every connection of a worker
shares one loop, and a commit that waits for fsync stops them all for as long.
There, `blocking` runs the call on one of the hub's native threads and the
greenlet waits for it, so other connections go on. The threads are few and live
as long as the worker, so each keeps its SQLite connection (storage.sqlite keeps
one a thread); a greenlet of its own would open one per request. Outside gevent
(Flask's test client, the CLI) it just calls.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

THREADS = 4  # as many commits at once as the gthread workers had threads


def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return fn(*args, **kwargs)
    import gevent

    pool = gevent.get_hub().threadpool
    if pool.maxsize != THREADS:
        pool.maxsize = THREADS
    outcome: tuple[bool, Any] = pool.apply(_caught, (fn, args, kwargs))
    ok, value = outcome
    if not ok:
        raise value  # in the greenlet: the pool would print each one's traceback itself
    result: T = value
    return result


def _caught(fn: Callable[..., Any], args: Any, kwargs: Any) -> tuple[bool, Any]:
    """The call's result, or the exception it raised, as a value."""
    try:
        return True, fn(*args, **kwargs)
    except BaseException as e:
        return False, e
