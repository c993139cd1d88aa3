"""The child of test_group_commit's crash test: serve's accept path without HTTP.

gevent-patched like serve's worker, the real Outbox and Committer, the transaction
on a native thread (receiver.web.offload). 32 greenlets accept webhooks; each prints
`ACK <n> <id>` as soon as its submit returns (the moment serve would send the 2xx).
Before the commit of the third batch of two rows or more, the fault hook prints
`DOOMED <n>…` for that batch's rows and SIGKILLs this process: after the batch's
writes, before its commit (and fsync). Run: python -m tests.web.commit_crash_child DIR
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

import gevent  # noqa: E402

from receiver.delivery.outbox import Outbox  # noqa: E402
from receiver.delivery.outbox_dedup import Accept  # noqa: E402
from receiver.delivery.outbox_rows import Pending  # noqa: E402
from receiver.web.committer import Committer  # noqa: E402

GREENLETS = 32
PER_GREENLET = 50
CRASH_AT = 3  # the third batch of two rows or more


def main(data_dir: str) -> None:
    box = Outbox(data_dir)
    seen = [0]
    out = sys.stdout

    def write(take: Callable[[], list[Accept]]) -> list[tuple[Pending, bool]]:
        batch: list[Accept] = []

        def taken() -> list[Accept]:  # under the write lock: the batch is known from here
            batch.extend(take())
            return batch

        def fault() -> None:
            if len(batch) >= 2:
                seen[0] += 1
                if seen[0] == CRASH_AT:
                    out.write("DOOMED " + " ".join(a.body.decode() for a in batch) + "\n")
                    out.flush()
                    os.kill(os.getpid(), signal.SIGKILL)

        return box.accept_many(taken, before_commit=fault)

    committer: Committer[Accept, tuple[Pending, bool]] = Committer(write)

    def client(k: int) -> None:
        for i in range(PER_GREENLET):
            n = k * PER_GREENLET + i
            pending, _ = committer.submit(Accept(str(n).encode(), "alertmanager", None, "g"))
            out.write(f"ACK {n} {pending.id}\n")
            out.flush()

    gevent.joinall([gevent.spawn(client, k) for k in range(GREENLETS)])
    out.write("DONE\n")  # the fault never fired: the test fails on this


if __name__ == "__main__":
    main(sys.argv[1])
