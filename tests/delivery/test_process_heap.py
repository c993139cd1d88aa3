"""The delivery process moves what start-up loaded out of the garbage collector's reach."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

# In a process of its own: freezing is for the whole process.
FREEZE = """
import gc
from receiver.delivery.process import settle_heap
loaded = [{"a long-lived object": [n]} for n in range(5000)]  # what start-up made
settle_heap()
print(gc.get_freeze_count() >= 5000)
"""


def test_what_start_up_loaded_is_out_of_the_collectors_reach() -> None:
    # Each full collection walked the modules, the routing table and the templates while
    # the send loop stood still: about 4% of the delivery CPU in row 7 (bench/README.md).
    done = subprocess.run(
        [sys.executable, "-c", FREEZE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]
