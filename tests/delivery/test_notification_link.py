"""The whole notification behind "N more": kept as received, linked with a signed token."""

from __future__ import annotations

import re
import sqlite3
import time

from receiver.delivery.outbox import Outbox
from receiver.delivery.planner import Planner
from receiver.messages.links import NOTIFICATION_PAGE
from receiver.messages.tokens import verify
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES

MANY = (FIXTURES / "alertmanager/many-55.json").read_bytes()
ONE = (FIXTURES / "alertmanager/firing-1.json").read_bytes()
LINK = re.compile(r"https://receiver\.example\.com/n/([A-Za-z0-9_.-]+)")


def plan(settings: Settings, body: bytes) -> Outbox:
    app = create_app(settings)
    reply = app.test_client().post("/alertmanager", data=body, content_type="application/json")
    assert reply.status_code == 200
    Planner(app.extensions["receiver"]).run_once()
    return Outbox(settings.data_dir)


def test_a_cut_message_links_to_the_receivers_page(settings: Settings) -> None:
    settings = settings.with_(external_url="https://receiver.example.com/", secret_key="k")
    box = plan(settings, MANY)
    (item,) = box.items()
    text = item.msg["markdown"]["text"]
    assert "还有 50 条告警未显示" in text  # the acknowledge link takes the room of one alert
    token = LINK.search(text)
    assert token, text
    data = verify("k", NOTIFICATION_PAGE, token.group(1), now=time.time())
    assert data is not None and data["n"] == item.notification_id
    kept = box.notification(data["n"])
    assert kept is not None and kept.body == MANY  # the webhook as received
    # It expires with the retention of what it names.
    assert data["e"] == int(kept.received_at + settings.retention)


def test_without_an_external_url_the_link_is_the_senders_list(settings: Settings) -> None:
    # (RECEIVER_EXTERNAL_URL without RECEIVER_SECRET_KEY is refused at start-up.)
    box = plan(settings, MANY)
    (item,) = box.items()
    assert "/n/" not in item.msg["markdown"]["text"]
    assert ":9093/#/alerts?filter=" in item.msg["markdown"]["text"]  # Alertmanager's list


def test_the_kept_webhook_goes_with_retention_once_no_item_needs_it(settings: Settings) -> None:
    box = plan(settings, ONE)
    (item,) = box.items()
    assert item.notification_id is not None and box.notification(item.notification_id)
    held = box.hold(item.id, until=time.time() + 60, reason="limit")
    assert box.get(held).notification_id == item.notification_id  # type: ignore[union-attr]
    with sqlite3.connect(box.path) as db:  # received long ago
        db.execute("UPDATE notifications SET received_at=0")
    box.purge_sent(3600)
    assert box.notification(item.notification_id) is not None  # its item is still queued
    with sqlite3.connect(box.path) as db:
        db.execute("UPDATE outbox SET state='sent', sent_at=0")
    box.purge_sent(3600)
    assert box.notification(item.notification_id) is None
