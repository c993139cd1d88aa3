"""Alertmanager HA: the same notification posted twice is accepted twice and stored once."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from receiver.delivery.outbox import Outbox
from receiver.ingest.alertmanager import parse_alertmanager
from receiver.ingest.dedup import dedup_key
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, Engine, plan_pending

FIRING = (FIXTURES / "alertmanager/firing-1.json").read_bytes()
RESOLVED = (FIXTURES / "alertmanager/resolved.json").read_bytes()


def post(
    client: FlaskClient, body: bytes = FIRING, path: str = "/alertmanager"
) -> tuple[int, dict[str, object]]:
    res = client.post(path, data=body, content_type="application/json")
    return res.status_code, res.json or {}


def test_a_second_peer_post_is_accepted_and_not_stored(settings: Settings) -> None:
    client = create_app(settings).test_client()
    # The second peer's body differs only in what the key leaves out (its externalURL).
    other_peer = json.dumps({**json.loads(FIRING), "externalURL": "http://am-2:9093"}).encode()
    assert post(client) == (200, {"status": "accepted", "id": 1, "alerts": 1})
    assert post(client, other_peer) == (200, {"status": "duplicate", "id": 1, "alerts": 1})
    assert [p.id for p in Outbox(settings.data_dir).pending()] == [1]
    assert plan_pending(client.application) == 1
    assert len(Outbox(settings.data_dir).items()) == 1
    # What is not the same notification is stored: the resolution, another route.
    assert post(client, RESOLVED)[1]["status"] == "accepted"
    assert post(client, path="/alertmanager/ops")[1]["status"] == "accepted"
    assert len(Outbox(settings.data_dir).pending()) == 2


def test_a_duplicate_counts_in_metrics(settings: Settings) -> None:
    client = create_app(settings).test_client()

    def duplicates() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        line = next(
            ln for ln in text.splitlines()
            if ln.startswith('dingtalk_receiver_duplicate_payloads_total{source="alertmanager"}')
        )  # fmt: skip
        return float(line.split()[-1])

    before = duplicates()
    post(client), post(client), post(client)
    assert duplicates() == before + 2


def test_window_zero_stores_every_post(settings: Settings) -> None:
    client = create_app(settings.with_(dedup_window=0.0)).test_client()
    assert [post(client)[1]["status"] for _ in range(2)] == ["accepted", "accepted"]
    assert len(Outbox(settings.data_dir).pending()) == 2


def test_the_window_counts_from_the_first_post(engine: Engine) -> None:
    """Alertmanager's own repeat (repeat_interval later) is stored again: it pages."""
    outbox = engine.outbox()
    key = dedup_key(parse_alertmanager(FIRING))

    def accept(now: float) -> tuple[int, bool]:
        p, stored = outbox.accept_once(FIRING, source="alertmanager", receiver=None,
                                       group_key="g", key=key, window_s=300, now=now)  # fmt: skip
        return p.id, stored

    t0 = 1_800_000_000.0
    first, stored = accept(t0)
    assert stored
    assert accept(t0 + 200) == (first, False)
    assert accept(t0 + 299) == (first, False)  # duplicates do not stretch the window
    second, stored = accept(t0 + 300)  # ids may skip on PostgreSQL, as sequences do
    assert stored and second > first
    assert accept(t0 + 301) == (second, False)
