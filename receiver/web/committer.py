"""Group commit: the webhooks a worker accepts at once share one transaction and one fsync.

Each accepted webhook used to be its own fsynced commit, and every request of a
worker queued for SQLite's one write lock. Here a request hands its row to the
worker's committer and waits; the committer takes every row queued so far (at most
RECEIVER_COMMIT_BATCH), writes them in one transaction on a native thread
(receiver.web.offload), and answers each request once that transaction has
committed: a 2xx still means the row is on disk. While one batch waits for its
fsync the next one gathers, so the busier the worker, the fuller the batches, and
an idle worker commits a lone row at once (no timer, no added wait).

A batch is taken as late as it can be: `write` is handed a `take` and calls it once
it holds SQLite's write lock, so what queued while it waited for the lock (the other
workers' commits and their fsyncs) rides along. Taken at the start instead, a batch
held about two rows at 8 connections, and each fsync costs the web workers CPU
(bench/README.md, "Web CPU per request").

Under serve's gevent worker the requests and the committer are greenlets of one
loop (threading is patched), and only the transaction leaves the loop. Elsewhere
(the Flask test client, the CLI) the committer is a plain thread. A failed
transaction (the disk, the database) fails every request of its batch alike: each
answers 503 and its sender retries, and none was told its row was stored.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from receiver import metrics
from receiver.web.offload import blocking

T = TypeVar("T")
R = TypeVar("R")


class _Waiter(Generic[R]):
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: R | None = None
        self.error: BaseException | None = None


class Committer(Generic[T, R]):
    """Batches `submit`ted items into calls of `write` (one transaction for them all).

    `write(take)` calls `take()` once, as soon as it holds the write lock, and gets the
    batch: every item queued by then (at most `max_batch`). It returns one result for
    each, in order. `take` runs on the thread that writes (a native one under gevent):
    it only slices the queue, which the GIL keeps whole, and this loop is its only
    consumer, so the requests' greenlets may go on appending meanwhile.
    """

    def __init__(
        self,
        write: Callable[[Callable[[], list[T]]], Sequence[R]],
        *,
        max_batch: int = 256,
        run: Callable[..., Sequence[R]] = blocking,
    ) -> None:
        self.write = write
        self.max_batch = max_batch
        self.run = run  # how `write` is called: off the gevent loop, in serve
        self._pid = 0
        self._lock = threading.Lock()
        self._queue: list[tuple[T, _Waiter[R]]] = []
        self._cond: threading.Condition | None = None

    def submit(self, item: T) -> R:
        """Commit `item` with whatever else is queued; its result once it is on disk."""
        cond = self._started()
        waiter: _Waiter[R] = _Waiter()
        with cond:
            self._queue.append((item, waiter))
            cond.notify()
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]

    def _started(self) -> threading.Condition:
        """This process's loop (a worker forked from a parent that had one starts its own)."""
        if self._pid == os.getpid() and self._cond is not None:
            return self._cond
        with self._lock:
            if self._pid != os.getpid() or self._cond is None:
                self._queue = []
                self._cond = threading.Condition()
                threading.Thread(target=self._loop, args=(self._cond,), daemon=True,
                                 name="committer").start()  # fmt: skip
                self._pid = os.getpid()
            return self._cond

    def _loop(self, cond: threading.Condition) -> None:
        while True:
            with cond:
                while not self._queue:
                    cond.wait()
            self._commit()

    def _commit(self) -> None:
        """Run one batch and answer each of its requests. Never raises but to stop the loop:
        a request whose answer never came would wait forever."""
        batch: list[tuple[T, _Waiter[R]]] = []
        taken = [False]

        def take() -> list[T]:
            if not taken[0]:
                taken[0] = True
                queue = self._queue
                batch.extend(queue[: self.max_batch])
                del queue[: len(batch)]
            return [item for item, _ in batch]

        try:
            results = list(self.run(self.write, take))
            if not taken[0]:
                raise RuntimeError("committer: the write did not take its batch")
            if len(results) != len(batch):
                raise RuntimeError(f"committer: {len(results)} results for {len(batch)} rows")
            metrics.commit_batch_rows.observe(len(batch))
        except BaseException as e:  # every request of the batch answers it (503 for the disk)
            take()  # failed before it took its batch (no write lock): those answer it
            for _, waiter in batch:
                waiter.error = e
                waiter.done.set()
            if not isinstance(e, Exception):  # the worker is stopping (GreenletExit, ...)
                raise
            return
        for (_, waiter), result in zip(batch, results, strict=True):
            waiter.result = result
            waiter.done.set()
