"""Planning: accepted webhooks become outbox items in the delivery process, once, never lost."""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from receiver import metrics
from receiver.delivery.outbox import Outbox
from receiver.delivery.planner import Planner
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES

FIRING = (FIXTURES / "alertmanager/firing-1.json").read_bytes()


def post(app, path: str = "/alertmanager"):  # type: ignore[no-untyped-def]
    return app.test_client().post(path, data=FIRING, content_type="application/json")


def test_planned_as_at_the_moment_it_was_received(settings: Settings) -> None:
    app = create_app(settings)
    assert post(app).status_code == 200
    received = datetime(2026, 11, 28, 3, 4, 5).astimezone().timestamp()
    with sqlite3.connect(Outbox(settings.data_dir).path) as db:  # as if the delivery was down
        db.execute("UPDATE pending SET received_at=?", (received,))
    state = app.extensions["receiver"]
    assert Planner(state).run_once() == 1
    (item,) = Outbox(settings.data_dir).items()
    stamp = datetime.fromtimestamp(received, state.renderer.tz).strftime("%Y-%m-%d %H:%M:%S")
    assert stamp in item.msg["markdown"]["text"]  # the message says when it was received
    assert item.created_at == item.due_since == received  # and so does the give-up age


def test_a_webhook_that_cannot_be_planned_stays_pending_and_is_retried(
    settings: Settings, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    shutil.copy(settings.routing, routing)
    app = create_app(settings.with_(routing=str(routing)))
    assert post(app, "/alertmanager/ops").status_code == 200
    state = app.extensions["receiver"]
    box = Outbox(settings.data_dir)

    # A reload removes the receiver named in the URL before the webhook is planned.
    routing.write_text(routing.read_text().replace("name: ops", "name: ops2").replace(
        "receiver: ops", "receiver: ops2"))  # fmt: skip
    state.reload()
    before = metrics.plan_failures._value.get()
    assert Planner(state).run_once() == 1
    (pending,) = box.pending()
    assert pending.attempts == 1 and "'ops' is no longer in" in (pending.last_error or "")
    assert box.items() == [] and metrics.plan_failures._value.get() == before + 1
    assert Planner(state).run_once() == 0  # not due again yet: it backs off

    # The receiver is back; once due again, the webhook is planned and sent to it.
    shutil.copy(settings.routing, routing)
    state.reload()
    with sqlite3.connect(box.path) as db:
        db.execute("UPDATE pending SET next_attempt_at=0")
    assert Planner(state).run_once() == 1
    (item,) = box.items()
    assert item.receiver == "ops" and item.userids == ("manager4220",) and box.pending() == []


def test_a_webhook_becomes_items_once(settings: Settings) -> None:
    app = create_app(settings)
    post(app)
    box = Outbox(settings.data_dir)
    (pending,) = box.pending()
    Planner(app.extensions["receiver"]).run_once()
    ids = [i.id for i in box.items()]
    assert ids and box.expand(pending, []) is None  # a second planner's work is discarded
    assert [i.id for i in box.items()] == ids and box.counts()["pending"] == 0


def test_a_webhook_that_fails_for_a_week_still_backs_off_and_does_not_stop_delivery(
    settings: Settings,
) -> None:
    """At the 10-minute cap, ~1024 failed plans take a week; 2.0**1024 must not overflow."""
    app = create_app(settings)
    post(app)
    box = Outbox(settings.data_dir)
    with sqlite3.connect(box.path) as db:  # a body that no longer parses, failing since long ago
        db.execute("UPDATE pending SET body=?, attempts=1024", (b"{not json",))
    assert Planner(app.extensions["receiver"]).run_once() == 1
    (pending,) = box.pending()
    assert pending.attempts == 1025 and (pending.last_error or "").startswith("PayloadError")
    assert box.due_pending(now=time.time() + 590) == []
    assert box.due_pending(now=time.time() + 601) != []
