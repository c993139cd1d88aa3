"""msgtype oa: its status bar flips to 已认领 · 张三 on an ack and to 已恢复 on a resolve,
through status_bar/update on the fake DingTalk, with the client's error classes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from receiver.delivery.escalate import Escalator
from receiver.delivery.outbox import Outbox
from receiver.delivery.planner import Planner
from receiver.delivery.worker import Worker
from receiver.dingtalk.client import Client
from receiver.errors import PermanentError, RetryableError
from receiver.ingest.alertmanager import parse_alertmanager
from receiver.messages.acklinks import sign
from receiver.messages.render import Renderer
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, ROOT, Engine
from tests.fakes.dingtalk import FakeDingTalk

FIRING = json.loads((FIXTURES / "alertmanager/firing-1.json").read_text())
RESOLVED = {**json.loads((FIXTURES / "alertmanager/resolved.json").read_text()),
            "groupKey": FIRING["groupKey"]}  # fmt: skip
KEY = "test-secret-key"
ROUTING = """\
users: {bob: u-bob, carol: u-carol}
receivers:
  - name: db
    users: [bob, carol]
    msgtype: oa
route:
  receiver: db
"""


def test_an_oa_message_has_a_head_a_form_a_status_bar_and_opens_the_ack_page() -> None:
    n = parse_alertmanager((FIXTURES / "alertmanager/firing-1.json").read_bytes())
    url = "https://rx.example/ack/" + sign(KEY, 1, "u-bob", 2e9)
    msg = Renderer(str(ROOT / "templates")).render(n, msgtype="oa", ack_url=url).msg
    oa = msg["oa"]
    assert msg["msgtype"] == "oa" and oa["message_url"] == url
    assert oa["head"] == {"bgcolor": "FFE5533C", "text": "告警"}
    assert oa["status_bar"] == {"status_value": "待认领", "status_bg": "0xFFF65E5E"}
    assert oa["body"]["title"] == "[告警:1] HighLatency"
    assert {"key": "severity:", "value": "critical"} in oa["body"]["form"]
    assert "API p99 latency above 2s" in oa["body"]["content"]


def test_ack_then_resolve_flip_the_status_bar(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, tmp_path: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    s = live_settings.with_(routing=str(routing), external_url="https://rx.example",
                            secret_key=KEY)  # fmt: skip
    app = create_app(s)
    box, client = Outbox(s.data_dir), Client(s)
    worker = Worker(box, client)
    escalator = Escalator(app.extensions["receiver"], client)

    assert app.test_client().post("/alertmanager", json=FIRING).status_code == 200
    Planner(app.extensions["receiver"]).run_once()
    assert worker.send_batch() == 2  # one OA message each: each carries its own link
    tasks = [t for i in box.items() for t in i.task_ids]
    bob = next(i for i in box.items() if i.userids == ("u-bob",))
    link = bob.msg["oa"]["message_url"].removeprefix("https://rx.example")
    assert box.next_due() is None  # no escalation, no bar to change: the thread idles
    assert app.test_client().post(link, data={"action": "ack"}).status_code == 200
    due = box.next_due()
    assert due is not None and due <= time.time()  # the bars wait: the thread looks now
    assert escalator.run_once() == 2
    assert box.next_due() is None
    assert {t: fake_dingtalk.status_bars.get(t) for t in tasks} == {
        t: ("已认领 · u-bob", "0xFF1677FF") for t in tasks
    }  # fmt: skip
    assert not any(i.msg.get("msgtype") == "text" for i in box.items())  # no notify_ack for oa

    assert app.test_client().post("/alertmanager", json=RESOLVED).status_code == 200
    Planner(app.extensions["receiver"]).run_once()
    escalator.run_once()
    assert {fake_dingtalk.status_bars[t] for t in tasks} == {("已恢复", "0xFF78C06E")}


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_a_message_sent_after_the_ack_gets_the_acked_bar_too(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, tmp_path: Path, engine: Engine
) -> None:
    """Carol's message waits (a retry, a pause) while Bob acknowledges: once it is
    sent, its bar flips as Bob's did, though it was rendered 待认领 before the ack."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    s = live_settings.with_(routing=str(routing), external_url="https://rx.example",
                            secret_key=KEY, database_url=engine.database_url)  # fmt: skip
    app = create_app(s)
    box, client = Outbox(s.data_dir, database_url=s.database_url), Client(s)
    worker = Worker(box, client)
    escalator = Escalator(app.extensions["receiver"], client)

    assert app.test_client().post("/alertmanager", json=FIRING).status_code == 200
    Planner(app.extensions["receiver"]).run_once()
    carol = next(i for i in box.items() if i.userids == ("u-carol",))
    with box._tx() as db:  # carol's message waits (as for a retry) while bob's goes
        db.execute("UPDATE outbox SET next_attempt_at=? WHERE id=?", (time.time() + 3600, carol.id))
    assert worker.send_batch() == 1
    bob = next(i for i in box.items() if i.userids == ("u-bob",))
    assert bob.state == "sent" and not next(i for i in box.items() if i.id == carol.id).task_ids
    link = bob.msg["oa"]["message_url"].removeprefix("https://rx.example")
    assert app.test_client().post(link, data={"action": "ack"}).status_code == 200
    assert escalator.run_once() == 1  # only Bob's message was sent: only its bar flips now

    with box._tx() as db:  # carol's retry is due now
        db.execute("UPDATE outbox SET next_attempt_at=0 WHERE id=?", (carol.id,))
    assert worker.send_batch() == 1
    (carol,) = [i for i in box.items() if i.id == carol.id]
    assert carol.state == "sent" and carol.task_ids
    assert escalator.run_once() == 1
    acked = ("已认领 · u-bob", "0xFF1677FF")
    assert {t: fake_dingtalk.status_bars.get(t) for t in (*bob.task_ids, *carol.task_ids)} == {
        t: acked for t in (*bob.task_ids, *carol.task_ids)
    }  # fmt: skip

    # A message of the group planned after the ack is rendered after it: no catch-up.
    second = {**FIRING["alerts"][0], "labels": {**FIRING["alerts"][0]["labels"], "pod": "b"}}
    again = {**FIRING, "alerts": [*FIRING["alerts"], second]}  # a new alert joins the group
    reply = app.test_client().post("/alertmanager", json=again)
    assert reply.status_code == 200 and reply.get_json()["status"] == "accepted"
    Planner(app.extensions["receiver"]).run_once()
    assert worker.send_batch() == 2
    assert escalator.run_once() == 0


def test_a_failed_flip_is_retried_or_given_up_by_its_class(
    live_settings: Settings, fake_dingtalk: FakeDingTalk, tmp_path: Path
) -> None:
    client = Client(live_settings)
    (sent,) = client.async_send(["u1"], {"msgtype": "text", "text": {"content": "x"}})
    fake_dingtalk.fail("update", times=1, body={"errcode": 90002, "errmsg": "throttled"})
    with pytest.raises(RetryableError):
        client.update_status_bar(sent.task_id, "已认领 · 张三", "0xFF1677FF")
    with pytest.raises(PermanentError):
        client.update_status_bar(999_999, "已认领 · 张三", "0xFF1677FF")  # never sent
    client.update_status_bar(sent.task_id, "已认领 · 张三", "0xFF1677FF")
    assert fake_dingtalk.status_bars[sent.task_id] == ("已认领 · 张三", "0xFF1677FF")
