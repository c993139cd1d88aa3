"""Several waiting webhooks of one group: only the newest is planned when it says all that
the older ones would have; the older ones are marked replaced, and say by what."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from receiver.delivery import planner
from receiver.delivery.outbox import Outbox
from receiver.delivery.planner import Planner
from receiver.delivery.replacing import covers
from receiver.ingest.alertmanager import parse_alertmanager
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, Engine

FOUR = json.loads((FIXTURES / "alertmanager/firing-4.json").read_text())
ESCALATING = """\
users: {bob: u-bob, carol: u-carol}
escalation_policies:
  pager:
    steps:
      - {after: 5m, notify: {users: [carol]}}
receivers:
  - name: db
    users: [bob]
    escalation: pager
route:
  receiver: db
"""


def body(*, resolved: tuple[int, ...] = (), drop: tuple[int, ...] = (), truncated: int = 0,
         group: str | None = None) -> dict[str, Any]:  # fmt: skip
    p: dict[str, Any] = copy.deepcopy(FOUR)
    for i in resolved:
        p["alerts"][i]["status"] = "resolved"
        p["alerts"][i]["endsAt"] = p["alerts"][i]["startsAt"]
    p["alerts"] = [a for i, a in enumerate(p["alerts"]) if i not in drop]
    if resolved and len(resolved) == len(p["alerts"]):
        p["status"] = "resolved"
    p["truncatedAlerts"] = truncated
    if group is not None:
        p["groupKey"] = group
    return p


def parsed(p: dict[str, Any]) -> Any:
    return parse_alertmanager(json.dumps(p).encode())


@pytest.mark.parametrize(
    ("newest", "older", "replaces"),
    [
        (body(), body(), True),
        (body(), body(resolved=(1,)), True),  # the alert fires again: the newest says so
        (body(), body(drop=(2,)), True),
        (body(drop=(2,)), body(), False),  # an alert left the group: only the older tells it
        (body(resolved=(1,)), body(), False),  # a resolved one never replaces a firing one here
        (body(truncated=3), body(), False),  # max_alerts cut the newest short
    ],
)
def test_what_the_newest_covers(newest: Any, older: Any, replaces: bool) -> None:
    assert covers(parsed(newest), parsed(older)) is replaces


@pytest.fixture
def app(settings: Settings, engine: Engine) -> Flask:
    # Alertmanager's repeats seconds apart would be duplicates within the HA window.
    return create_app(settings.with_(database_url=engine.database_url, dedup_window=0.0))


def post(app: Flask, payload: dict[str, Any]) -> None:
    assert app.test_client().post("/alertmanager", json=payload).status_code == 200


def outbox(app: Flask) -> Outbox:
    box: Outbox = app.extensions["receiver"].outbox
    return box


def test_only_the_newest_of_a_group_is_planned_and_the_older_say_by_what(app: Flask) -> None:
    box = outbox(app)
    for p in (body(), body(), body(group="other"), body()):
        post(app, p)
    first, second, other, newest = (p.id for p in box.pending())
    assert Planner(app.extensions["receiver"]).run_once() == 4
    assert box.pending() == []
    items = box.items(limit=100)
    planned = {i.notification_id for i in items if i.state == "queued"}
    assert planned == {other, newest}  # the two older ones were neither routed nor rendered
    replaced = [i for i in items if i.state == "superseded"]
    first_of_newest = min(i.id for i in items if i.notification_id == newest)
    assert [(i.notification_id, i.superseded_by) for i in replaced] == [
        (first, first_of_newest), (second, first_of_newest),
    ]  # fmt: skip
    for i in replaced:  # what the console and `outbox show` tell of each
        assert i.userids == () and i.msg == {} and i.receiver == "db"
        assert f"p{newest}" in (i.last_error or "")
        assert [h["outcome"] for h in box.history(i.id)] == ["superseded"]
        assert i.notification_id and box.notification(i.notification_id)  # kept as received
    assert {i.notification_id for i in box.claim(limit=10)} == {other, newest}


def test_a_resolved_newest_does_not_replace_a_firing_one(app: Flask) -> None:
    box = outbox(app)
    post(app, body())
    post(app, body(resolved=(0, 1, 2, 3)))
    firing, resolved = (p.id for p in box.pending())
    Planner(app.extensions["receiver"]).run_once()
    assert {i.notification_id for i in box.items()} == {firing, resolved}
    # and the claim sends both, firing first (receiver.delivery.order's exception)
    assert [i.notification_id for i in box.claim(limit=1)] == [firing]


def test_an_escalation_starts_when_the_first_of_the_group_was_received(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ESCALATING)
    app = create_app(settings.with_(database_url=engine.database_url, dedup_window=0.0,
                                    routing=str(routing)))  # fmt: skip
    box = outbox(app)
    post(app, body())
    time.sleep(0.05)
    post(app, body())
    older, newest = box.pending()
    assert newest.received_at - older.received_at > 0.04
    Planner(app.extensions["receiver"]).run_once()
    (esc,) = box.escalations()
    assert esc.started_at == pytest.approx(older.received_at, abs=1e-3)
    assert esc.due_at == pytest.approx(older.received_at + 300, abs=1e-3)


def test_an_older_webhook_with_the_same_bytes_is_not_parsed_again(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = outbox(app)
    for p in (body(resolved=(1,)), body(), body()):
        post(app, p)
    parsed: list[bytes] = []
    real = planner.PARSERS["alertmanager"]
    monkeypatch.setitem(planner.PARSERS, "alertmanager", lambda b: parsed.append(b) or real(b))
    Planner(app.extensions["receiver"]).run_once()
    assert len(parsed) == 2  # the newest, and the older one that differs from it
    assert box.counts()["superseded"] == 2


def test_the_same_resolved_bytes_twice_are_both_planned(app: Flask) -> None:
    box = outbox(app)
    for _ in range(2):
        post(app, body(resolved=(0, 1, 2, 3)))
    first, second = (p.id for p in box.pending())
    Planner(app.extensions["receiver"]).run_once()
    assert {i.notification_id for i in box.items()} == {first, second}
    assert box.counts()["superseded"] == 0  # the claim decides, per receiver, as before
