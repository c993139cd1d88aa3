"""The HTTP shell: replies and what is on disk when they are sent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import jsonify
from flask.testing import FlaskClient

from receiver.delivery import health
from receiver.delivery.outbox import Outbox
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, plan_pending

FIRING = (FIXTURES / "alertmanager/firing-1.json").read_bytes()


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()


def post(client: FlaskClient, body: bytes = FIRING, path: str = "/alertmanager", **kw: str):  # type: ignore[no-untyped-def]
    return client.post(path, data=body, content_type=kw.get("ct", "application/json"))


def test_2xx_only_after_the_webhook_is_on_disk(client: FlaskClient, settings: Settings) -> None:
    res = post(client)
    assert res.status_code == 200 and res.json == {"status": "accepted", "id": 1, "alerts": 1}
    (pending,) = Outbox(settings.data_dir).pending()  # committed as received, not yet rendered
    assert (pending.id, pending.source, pending.body) == (1, "alertmanager", FIRING)
    assert Outbox(settings.data_dir).items() == []
    assert plan_pending(client.application) == 1  # the delivery process's first step
    (item,) = Outbox(settings.data_dir).items()
    assert item.state == "queued" and item.receiver == "db" and item.userids == ("user0002",)
    assert "API p99 latency above 2s" in item.msg["markdown"]["text"]
    assert item.created_at == pending.received_at and Outbox(settings.data_dir).pending() == []


def test_the_accepted_reply_is_what_jsonify_writes(client: FlaskClient) -> None:
    """The accept path writes its reply without Flask's encoder: the same bytes."""
    res = post(client)
    with client.application.app_context():
        want = jsonify(status="accepted", id=1, alerts=1)
    assert res.get_data() == want.get_data() == b'{"alerts":1,"id":1,"status":"accepted"}\n'
    assert res.headers["Content-Type"] == want.headers["Content-Type"] == "application/json"


def test_receiver_in_the_path_skips_the_tree(client: FlaskClient, settings: Settings) -> None:
    assert post(client, path="/alertmanager/ops").status_code == 200
    plan_pending(client.application)
    (item,) = Outbox(settings.data_dir).items()
    assert item.receiver == "ops" and item.userids == ("manager4220",)


def test_unknown_receiver_is_404(client: FlaskClient) -> None:
    res = post(client, path="/alertmanager/nobody")
    assert res.status_code == 404 and "nobody" in res.json["error"]


def test_unwritable_outbox_answers_503(settings: Settings) -> None:
    app = create_app(settings)
    shutil.rmtree(settings.data_dir)
    Path(settings.data_dir).write_text("not a directory")  # the disk can't take the write
    res = post(app.test_client())
    assert res.status_code == 503 and "retry" in res.json["error"]


@pytest.mark.parametrize(
    ("body", "ct", "status", "error"),
    [
        (b"{", "application/json", 400, "invalid JSON"),
        (b"[]", "application/json", 400, "expected an object"),
        (b'{"version": "3"}', "application/json", 400, "$.version"),
        (FIRING, "text/plain", 415, "application/json"),
    ],
)
def test_bad_input(client: FlaskClient, body: bytes, ct: str, status: int, error: str) -> None:
    res = post(client, body, ct=ct)
    assert res.status_code == status and error in res.json["error"]


def test_body_over_the_limit_is_413(settings: Settings) -> None:
    client = create_app(settings.with_(max_body_bytes=100)).test_client()
    res = post(client)
    assert res.status_code == 413 and "error" in res.json


def test_health_and_readiness(client: FlaskClient, settings: Settings) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    health.beat(settings.data_dir)  # what the delivery worker does each poll
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["outbox"]["queued"] == 0


def test_reload_needs_the_admin_token(settings: Settings) -> None:
    client = create_app(settings.with_(admin_token="s3cret")).test_client()
    assert client.post("/-/reload").status_code == 401
    ok = client.post("/-/reload", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_failed_reload_keeps_the_running_table(settings: Settings, tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    shutil.copy(settings.routing, routing)
    client = create_app(settings.with_(routing=str(routing))).test_client()
    routing.write_text("route: [")
    res = client.post("/-/reload")
    assert res.status_code == 500 and "routing.yaml" in str(res.json["problems"])
    assert post(client).status_code == 200  # still routing with the old table


def test_grafana_may_use_put(client: FlaskClient, settings: Settings) -> None:
    body = (FIXTURES / "grafana/unified-firing.json").read_bytes()
    res = client.put("/grafana", data=body, content_type="application/json")
    assert res.status_code == 200 and res.json["alerts"] == 2
    plan_pending(client.application)
    assert {i.source for i in Outbox(settings.data_dir).items()} == {"grafana"}


def test_a_failing_template_falls_back_is_counted_and_still_sent(
    settings: Settings, tmp_path: Path
) -> None:
    from receiver import metrics

    templates = tmp_path / "templates"
    shutil.copytree(Path(settings.templates), templates)
    (templates / "broken.md.j2").write_text("{{ alerts[0].labels.alertname | no_such_filter }}")
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "receivers:\n  - name: ops\n    users: [u1]\n    template: broken.md.j2\n"
        "route:\n  receiver: ops\n"
    )
    before = metrics.template_fallbacks.labels("broken.md.j2")._value.get()
    app = create_app(settings.with_(routing=str(routing), templates=str(templates)))
    assert post(app.test_client()).status_code == 200
    plan_pending(app)
    (item,) = Outbox(settings.data_dir).items()
    assert "API p99 latency above 2s" in item.msg["markdown"]["text"]  # the built-in default
    assert metrics.template_fallbacks.labels("broken.md.j2")._value.get() == before + 1
