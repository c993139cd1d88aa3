"""Row 7's drain in instructions a webhook: a figure the machine's noise does not move.

    .venv/bin/python -m bench.instructions [CHECKOUT ...]    # default: this one

On a shared machine a change of 2-3% in CPU a webhook is lost in the noise of a
sitting (±5% in `bench.drainstages`, 5 December). Valgrind's callgrind counts the
instructions a process runs instead, which repeat to within about 0.2% run to run. For each
checkout (alternatives made with `git worktree add --detach /tmp/base REV`),
`bench.drainstages` runs under callgrind with FEW and then MANY webhooks, and the
difference divided by MANY - FEW is one webhook's instructions in the drain's loop,
start-up left out; the fake DingTalk runs in a process of its own, not counted.

An instruction count is not time: it leaves out the kernel (an fsync, a socket's
syscalls) and what the caches cost, and rendering's instructions run faster than
SQLite's. Use it to tell whether a small change did what it meant to, beside row 7's
time, not instead of it. Needs `valgrind` (Debian: `apt-get install valgrind`);
about 40 s a checkout, the checkouts measured side by side.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import ROOT

FEW, MANY = 100, 300
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(checkout: Path, webhooks: int) -> int:
    """Instructions of one `bench.drainstages WEBHOOKS` run in `checkout`, whole process."""
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "bench.drainstages", str(webhooks)],
        cwd=checkout, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True,
        text=True, timeout=600, check=True,
    )  # fmt: skip
    found = _COLLECTED.search(run.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count in {checkout}:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def per_webhook(checkout: Path) -> dict[str, object]:
    few, many = instructions(checkout, FEW), instructions(checkout, MANY)
    return {"checkout": str(checkout), "instructions_per_webhook": (many - few) // (MANY - FEW)}


def main(argv: list[str]) -> None:
    if shutil.which("valgrind") is None:
        sys.exit("bench.instructions needs valgrind (Debian: apt-get install valgrind)")
    checkouts = [Path(a).resolve() for a in argv] or [ROOT]
    with ThreadPoolExecutor(max_workers=len(checkouts)) as pool:
        for result in pool.map(per_webhook, checkouts):
            print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
