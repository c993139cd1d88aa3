"""Group commit: the webhooks a worker accepts at once share one transaction and one fsync.

Each accepted webhook used to be its own fsynced commit, and every request of a
worker queued for SQLite's one write lock. Here a request hands its row to the
worker's committer and waits; the committer takes every row queued so far (at most
RECEIVER_COMMIT_BATCH), writes them in one transaction on a native thread, and
answers each request once that transaction has committed: a 2xx still means the row
is on disk. While one batch waits for its fsync the next one gathers, so the busier
the worker, the fuller the batches, and an idle worker commits a lone row at once
(no timer, no added wait).

A batch is taken as late as it can be: `write` is handed a `take` and calls it once
it holds SQLite's write lock, so what queued while it waited for the lock (the other
workers' commits and their fsyncs) rides along. Taken at the start instead, a batch
held about two rows at 8 connections, and each fsync costs the web workers CPU
(bench/README.md, "Web CPU per request").

The committer is a native thread of the worker's own, kept for its life (with its
SQLite connection), even under serve's gevent worker, where the requests are
greenlets of one loop and only the transaction leaves it. The loop and the thread
meet once a batch, each way: a request that finds the thread idle asks the loop to
start it (`run_callback`: once the loop has run what is ready now, so those
requests join the batch), and the thread hands the batch's answers back to the loop
in one callback (`run_callback_threadsafe`), after which the next batch may start.
Before, a committer greenlet handed each transaction to the hub's thread pool,
which cost every commit a dispatch there and a result back (about a tenth of the
worker's Python time in row 1; bench/README.md, "The committer on a thread of its
own"). Outside gevent (the Flask test client, the CLI) the requests are threads and
the committer answers them itself. A failed transaction (the disk, the database)
fails every request of its batch alike: each answers 503 and its sender retries,
and none was told its row was stored.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from receiver import metrics

T = TypeVar("T")
R = TypeVar("R")


def _native() -> tuple[Callable[[], Any], Callable[..., Any], Any]:
    """A native lock factory, a native thread starter, and the gevent hub (None without
    gevent's patching): the originals, where gevent's monkey-patching replaced them."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        import _thread

        return _thread.allocate_lock, _thread.start_new_thread, None
    import gevent

    original = monkey.get_original
    return (original("_thread", "allocate_lock"), original("_thread", "start_new_thread"),
            gevent.get_hub())  # fmt: skip


class _Waiter(Generic[R]):
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()  # gevent's under its patching: set on the loop only
        self.result: R | None = None
        self.error: BaseException | None = None


Batch = list[tuple[T, _Waiter[R]]]


class Committer(Generic[T, R]):
    """Batches `submit`ted items into calls of `write` (one transaction for them all).

    `write(take)` calls `take()` once, as soon as it holds the write lock, and gets the
    batch: every item queued by then (at most `max_batch`). It returns one result for
    each, in order. Both run on the committer's thread. The queue and the flags below
    are shared with the requests under a native lock, held only to read or change them.
    """

    def __init__(
        self, write: Callable[[Callable[[], list[T]]], Sequence[R]], *, max_batch: int = 256
    ) -> None:
        self.write = write
        self.max_batch = max_batch
        self._pid = 0
        self._lock = threading.Lock()
        self._queue: Batch[T, R] = []
        # Made by _started, in the process that commits (not a parent that forks it):
        self._mutex: Any = None  # native locks: the queue and flags; the thread's wake-up
        self._wake: Any = None
        self._hub: Any = None  # gevent's, under its patching
        self._alive: Any = None
        self._idle, self._kicking = True, False  # the thread waits; a _kick is on its way

    def submit(self, item: T) -> R:
        """Commit `item` with whatever else is queued; its result once it is on disk."""
        mutex = self._started()
        waiter: _Waiter[R] = _Waiter()
        with mutex:
            self._queue.append((item, waiter))
            kick = self._idle and not self._kicking
            self._kicking |= kick
        if kick:
            self._schedule_kick()
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]

    def _started(self) -> Any:
        """This process's thread (a worker forked from a parent that had one starts its own)."""
        if self._pid == os.getpid():
            return self._mutex
        with self._lock:
            if self._pid != os.getpid():
                allocate, start, self._hub = _native()
                if self._hub is not None:  # answers may be on their way: the loop must not exit
                    self._alive = self._hub.loop.async_()
                    self._alive.start(lambda: None)
                self._queue = []
                self._mutex, self._wake = allocate(), allocate()
                self._wake.acquire()  # released by _kick, once a batch is due
                self._idle, self._kicking = True, False
                start(self._loop, (self._mutex, self._wake))
                self._pid = os.getpid()
            return self._mutex

    def _schedule_kick(self) -> None:
        if self._hub is None:
            self._kick()
        else:  # on the loop, after what is ready there now: those requests join the batch
            self._hub.loop.run_callback(self._kick)

    def _kick(self) -> None:
        """Start the thread on the next batch, if it is idle and a request waits."""
        with self._mutex:
            self._kicking = False
            if self._idle and self._queue:
                self._idle = False
                self._wake.release()

    def _loop(self, mutex: Any, wake: Any) -> None:
        while True:
            wake.acquire()
            batch, results, error = self._commit(mutex)
            with mutex:
                self._idle = True  # before the answers: the kick they bring must see it
            if self._hub is None:
                self._answer(batch, results, error)
            else:  # the requests' events belong to the loop: they are set there
                self._hub.loop.run_callback_threadsafe(self._answer, batch, results, error)

    def _commit(self, mutex: Any) -> tuple[Batch[T, R], list[R], BaseException | None]:
        """Run one batch: its requests, and the results or the error they answer with."""
        batch: Batch[T, R] = []
        taken = [False]

        def take() -> list[T]:
            if not taken[0]:
                taken[0] = True
                with mutex:
                    queue = self._queue
                    batch.extend(queue[: self.max_batch])
                    del queue[: len(batch)]
            return [item for item, _ in batch]

        try:
            results = list(self.write(take))
            if not taken[0]:
                raise RuntimeError("committer: the write did not take its batch")
            if len(results) != len(batch):
                raise RuntimeError(f"committer: {len(results)} results for {len(batch)} rows")
        except BaseException as e:  # every request of the batch answers it (503 for the disk)
            take()  # failed before it took its batch (no write lock): those answer it
            return batch, [], e
        return batch, results, None

    def _answer(self, batch: Batch[T, R], results: list[R], error: BaseException | None) -> None:
        """Answer each request of a batch; then the next batch may start."""
        if error is None:
            metrics.commit_batch_rows.observe(len(batch))
            for (_, waiter), result in zip(batch, results, strict=True):
                waiter.result = result
                waiter.done.set()
        else:
            for _, waiter in batch:
                waiter.error = error
                waiter.done.set()
        with self._mutex:
            kick = not self._kicking
            self._kicking = True
        if kick:
            self._schedule_kick()
