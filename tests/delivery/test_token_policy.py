"""A revoked or reset app secret (docs/delivery.md, Token errors): sending pauses with
reason `token`, the pages wait uncharged and go out by themselves once the secret is
fixed, and what the alert rule watches says so from the first failure."""

from __future__ import annotations

import time

from receiver import metrics
from receiver.delivery.outbox import Outbox
from receiver.delivery.pipeline import Entry
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client
from receiver.settings import Settings
from tests.fakes.dingtalk import FakeDingTalk

MSG = {"msgtype": "text", "text": {"content": "磁盘满了"}}


def test_a_revoked_secret_pauses_keeps_the_pages_and_resumes_once_fixed(
    live_settings: Settings, fake_dingtalk: FakeDingTalk
) -> None:
    box = Outbox(live_settings.data_dir)
    (item_id,) = box.enqueue([Entry("ops", MSG, ("alice",))], source="alertmanager", group_key="g")
    paused = metrics.sends.labels("paused", "token")
    before = paused._value.get()
    revoked = Client(live_settings.with_(app_secret="reset-in-the-console"))
    Worker(box, revoked, backoff_min_s=0.05, backoff_max_s=0.05).run_once()
    item = box.get(item_id)
    assert item is not None and item.state in ("queued", "retry") and item.attempts == 0
    state = box.pause_state()
    assert state is not None and state.reason == "token"  # sending_paused{reason="token"}
    assert "DINGTALK_APP_SECRET" in state.error  # `outbox list` shows what to fix
    assert paused._value.get() == before + 1
    assert fake_dingtalk.delivered() == []
    # The operator puts the right secret back: the next probe gets a token, and the
    # page goes out with no `outbox retry`.
    fixed = Worker(box, Client(live_settings), backoff_min_s=0.05, backoff_max_s=0.05)
    deadline = time.monotonic() + 10
    while box.get(item_id).state != "sent" and time.monotonic() < deadline:  # type: ignore[union-attr]
        fixed.run_once()
        time.sleep(0.05)
    assert box.get(item_id).state == "sent"  # type: ignore[union-attr]
    assert box.pause_state() is None and len(fake_dingtalk.delivered()) == 1
