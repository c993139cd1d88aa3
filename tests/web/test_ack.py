"""The acknowledge page: GET shows and changes nothing; POST acknowledges as the token's
person; forged, altered and expired tokens get one and the same 403 page."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from receiver.delivery.outbox import Item, Outbox
from receiver.delivery.planner import Planner
from receiver.messages.acklinks import sign
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, require_binary
from tests.procs import ALERTMANAGER, alertmanager, http

FIRING = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())
KEY = "test-secret-key"
ROUTING = """\
users: {bob: u-bob, carol: u-carol}
escalation_policies:
  pager:
    steps: [{after: 5m, notify: {users: [carol]}}]
receivers:
  - name: db
    users: [bob, carol]
    escalation: pager
    notify_ack: true
route:
  receiver: db
"""


def setup(settings: Settings, tmp_path: Path, **extra: str) -> tuple[Flask, Outbox]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    s = settings.with_(
        routing=str(routing), external_url="https://rx.example", secret_key=KEY, **extra
    )
    app = create_app(s)
    assert app.test_client().post("/alertmanager", json=FIRING).status_code == 200
    Planner(app.extensions["receiver"]).run_once()
    return app, Outbox(s.data_dir)


def link(item: Item) -> str:
    text = str(item.msg["markdown"]["text"])
    return "/ack/" + text.split("(https://rx.example/ack/")[1].split(")")[0]


def bobs(box: Outbox) -> Item:
    return next(i for i in box.items() if i.userids == ("u-bob",))


def test_get_shows_the_group_and_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    app, box = setup(settings, tmp_path)
    client = app.test_client()
    for _ in range(3):  # a link preview, the phone's prefetch, the person
        page = client.get(link(bobs(box)))
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "API p99 latency above 2s" in html and "[告警:1] HighLatency" in html
        assert "u-bob" in html and "u-carol" in html  # who was notified
        assert 'value="ack"' in html and "silence-1h" not in html  # no ALERTMANAGER_URL
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Referrer-Policy"] == "no-referrer"
    (esc,) = box.escalations()
    assert esc.state == "active" and box.acked("db", esc.group_key, 0) == []


def test_post_acknowledges_as_the_tokens_person(settings: Settings, tmp_path: Path) -> None:
    app, box = setup(settings, tmp_path)
    before = {i.id for i in box.items()}
    page = app.test_client().post(link(bobs(box)), data={"action": "ack"})
    assert page.status_code == 200
    assert "已认领 · u-bob" in page.get_data(as_text=True)
    assert box.escalations() == []
    assert box.escalations(active_only=False)[0].state == "acked"
    (who,) = box.acked("db", FIRING["groupKey"], 0)
    assert who[0] == "u-bob"
    # notify_ack: the others hear who took it
    (told,) = [i for i in box.items() if i.id not in before]
    assert told.userids == ("u-carol",) and "已认领 · u-bob" in told.msg["text"]["content"]
    again = app.test_client().post(link(bobs(box)), data={"action": "ack"})
    assert "您已认领" in again.get_data(as_text=True)  # once is enough: nothing new is sent
    assert len(box.items()) == len(before) + 1
    assert 'value="ack"' not in app.test_client().get(link(bobs(box))).get_data(as_text=True)


def test_forged_altered_and_expired_tokens_get_the_same_403(
    settings: Settings, tmp_path: Path
) -> None:
    app, box = setup(settings, tmp_path)
    client: FlaskClient = app.test_client()
    good = link(bobs(box)).removeprefix("/ack/")
    nid, user, exp, sig = good.split(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    bad = [
        f"{nid}.{user}.{exp}.{flipped}",  # altered signature
        f"{nid}.{sign(KEY, 1, 'u-carol', 0).split('.')[1]}.{exp}.{sig}",  # someone else
        f"{nid}.{user}.{int(exp) + 3600}.{sig}",  # a longer life
        sign("another-key", int(nid), "u-bob", time.time() + 3600),  # forged
        sign(KEY, int(nid), "u-bob", time.time() - 1),  # expired
        sign(KEY, 999_999, "u-bob", time.time() + 3600),  # valid, but no such notification
        "garbage",
    ]
    bodies = set()
    for token in bad:
        for method in ("GET", "POST"):
            reply = client.open(f"/ack/{token}", method=method, data={"action": "ack"})
            assert reply.status_code == 403, token
            bodies.add(reply.get_data())
    assert len(bodies) == 1  # whether or not the notification exists
    assert box.escalations()[0].state == "active"  # nothing changed
    assert box.acked("db", FIRING["groupKey"], 0) == []


def test_acknowledge_and_silence_reaches_a_real_alertmanager(
    settings: Settings, tmp_path: Path
) -> None:
    am_bin = require_binary(ALERTMANAGER)
    with alertmanager(am_bin, "http://127.0.0.1:9/unused", tmp_path) as am:
        app, box = setup(settings, tmp_path, alertmanager_url=am)
        url = link(bobs(box))
        assert "silence-1h" in app.test_client().get(url).get_data(as_text=True)
        started = time.time()
        page = app.test_client().post(url, data={"action": "silence-1h"})
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "已静默至" in html, html
        status, silences = http("GET", am + "/api/v2/silences")
        assert status == 200
        (s,) = silences
        assert s["status"]["state"] == "active"
        assert s["matchers"] == [
            {"name": "alertname", "value": "HighLatency", "isRegex": False, "isEqual": True}
        ]  # the group's labels
        assert s["createdBy"] == "u-bob"  # no synced directory here: the userid
        assert "DingTalk" in s["comment"] and "u-bob" in s["comment"]
        ends = time.mktime(time.strptime(s["endsAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert started + 3500 < ends < time.time() + 3700
    assert box.escalations(active_only=False)[0].state == "acked"


def test_the_page_escapes_what_the_payload_says(settings: Settings, tmp_path: Path) -> None:
    hostile = json.loads((FIXTURES / "alertmanager/hostile-text.json").read_text())
    hostile["alerts"][0]["annotations"]["summary"] = '<script>alert("x")</script> & <b>hi</b>'
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    s = settings.with_(routing=str(routing), external_url="https://rx.example", secret_key=KEY)
    app = create_app(s)
    assert app.test_client().post("/alertmanager", json=hostile).status_code == 200
    Planner(app.extensions["receiver"]).run_once()
    html = app.test_client().get(link(bobs(Outbox(s.data_dir)))).get_data(as_text=True)
    assert "<script>" not in html and "<b>hi</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;hi&lt;/b&gt;" in html
