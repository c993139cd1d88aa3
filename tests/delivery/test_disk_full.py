"""Issue #22, point 2: the outbox can't take a write in the middle of a batch.

The disk is "filled" by RLIMIT_FSIZE set to 0 in a delivery worker run in a child
process (so that pytest's own files are not touched): every write to a regular file
then fails (EFBIG), as on a full disk, while the DingTalk calls still work. The limit
drops right after DingTalk accepts the first message of a batch of 10, and comes
back `FULL_S` later. Python ignores SIGXFSZ, so the writes fail rather than kill.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry
from tests.fakes.dingtalk import APP_KEY, APP_SECRET, FakeDingTalk

FULL_S = 12.0
BATCH = 10

CHILD = r"""
import json, logging, resource, sys, threading, time
from receiver.delivery.limits import Limits
from receiver.delivery.outbox import Outbox
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client
from receiver.settings import Settings

data_dir, full_s, expect = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
settings = Settings.from_env()
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
events = {}

class DiskFillsAfterTheFirstSend:  # a Sender around the real client
    def __init__(self, inner):
        self.inner = inner
    def async_send(self, userids, msg, depts):
        results = self.inner.async_send(userids, msg, depts)
        if "full" not in events:
            events["full"] = time.time()
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
            def space_back():
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                events["space_back"] = time.time()
            threading.Timer(full_s, space_back).start()
        return results

box = Outbox(data_dir, synchronous="NORMAL")
limits = Limits(data_dir + "/limits.sqlite3", rate=1000)
worker = Worker(box, DiskFillsAfterTheFirstSend(Client(settings)), limits=limits, lease_s=60)
thread = threading.Thread(target=worker.run)
thread.start()
deadline = time.time() + full_s + 40
while time.time() < deadline:
    time.sleep(0.2)
    if "space_back" in events and box.counts()["sent"] >= expect:
        break
worker.stopping.set()
thread.join()
events["counts"] = box.counts()
print(json.dumps(events))
"""


def test_a_write_failing_mid_batch_sends_nothing_twice_and_strands_nothing(
    tmp_path: Path, fake_dingtalk: FakeDingTalk
) -> None:
    data = tmp_path / "data"
    box = Outbox(str(data))
    for n in range(BATCH):
        msg = {"msgtype": "text", "text": {"content": f"disk {n:02d}"}}
        box.enqueue([Entry("ops", msg, ("alice",))], source="am", group_key=f"g{n}")
    env = {
        "DINGTALK_APP_KEY": APP_KEY, "DINGTALK_APP_SECRET": APP_SECRET,
        "DINGTALK_APP_AGENT_ID": "424242", "DINGTALK_API_BASE": fake_dingtalk.url,
        "RECEIVER_DATA_DIR": str(data), "PATH": "/usr/bin:/bin",
    }  # fmt: skip
    started = time.time()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(FULL_S), str(BATCH)],
        capture_output=True, text=True, env=env, timeout=FULL_S + 90, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    events = json.loads(child.stdout.strip().splitlines()[-1])
    sent = [r.body["msg"]["text"]["content"] for r in fake_dingtalk.delivered() if r.body]
    after_space = [r.received_at - events["space_back"] for r in fake_dingtalk.delivered()]
    errors = [ln for ln in child.stderr.splitlines() if "outbox_unavailable" in ln]
    print(
        f"\n[disk full] {len(sent)} sent, duplicates={len(sent) - len(set(sent))},"
        f" rest drained {max(after_space):.2f}s after space came back,"
        f" outbox_unavailable lines={len(errors)} in {FULL_S:.0f}s,"
        f" total {time.time() - started:.1f}s"
    )
    for line in errors:
        print("   ", line[:160])
    assert sorted(sent) == [f"disk {n:02d}" for n in range(BATCH)]  # each once
    assert events["counts"]["sent"] == BATCH
    assert "space_back" in events and sum(1 for t in after_space if t < 0) == 1  # only the first
    assert max(after_space) < 30  # not its 60-s lease: given back as soon as it could be
    assert 1 <= len(errors) <= FULL_S / 10 + 2  # once per 10 s, not per poll
    assert any("repeated" in line for line in errors)  # with a count
    assert "outbox_available_again errors_not_logged=" in child.stderr
    assert [h["outcome"] for h in box.history(1)] == ["sent"]  # one call, recorded once
