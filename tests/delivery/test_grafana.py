"""Every Grafana fixture, posted to /grafana, becomes a sensible message in the outbox."""

from __future__ import annotations

import json

import pytest

from receiver.delivery.outbox import Outbox
from receiver.settings import Settings
from receiver.web.app import create_app
from tests.conftest import FIXTURES, plan_pending

CASES = [
    # fixture, words the title must hold, text the body must hold
    ("unified-firing", "[告警:2]", ["High memory usage", "High CPU usage"]),
    ("unified-resolved", "[已恢复]", ["High memory usage", "High CPU usage"]),
    ("unified-mixed", "[告警:1]", ["High memory usage", "High CPU usage", "已恢复"]),
    ("legacy-alerting", "[告警:1] Panel Title alert", ["Panel Title alert"]),
    ("legacy-no_data", "[告警:1] Panel Title alert", ["Panel Title alert"]),
    ("legacy-ok", "[已恢复] Panel Title alert", ["Panel Title alert"]),
]


@pytest.mark.parametrize(("fixture", "title", "texts"), CASES)
def test_grafana_fixture_is_delivered_as_a_sensible_message(
    settings: Settings, fixture: str, title: str, texts: list[str]
) -> None:
    body = (FIXTURES / "grafana" / f"{fixture}.json").read_bytes()
    app = create_app(settings)
    res = app.test_client().post("/grafana/ops", data=body, content_type="application/json")
    assert res.status_code == 200, res.json
    plan_pending(app)
    (item,) = Outbox(settings.data_dir).items()
    assert item.source == "grafana" and item.userids == ("manager4220",)
    md = item.msg["markdown"]
    assert md["title"].startswith(title), md["title"]
    for text in texts:
        assert text in md["text"], (text, md["text"])
    assert len(json.dumps(item.msg, ensure_ascii=False, separators=(",", ":")).encode()) <= 2048


def test_legacy_alert_without_times_has_no_empty_time_line(settings: Settings) -> None:
    body = (FIXTURES / "grafana/legacy-alerting.json").read_bytes()
    app = create_app(settings)
    app.test_client().post("/grafana/ops", data=body, content_type="application/json")
    plan_pending(app)
    (item,) = Outbox(settings.data_dir).items()
    assert "开始" not in item.msg["markdown"]["text"]  # Grafana's legacy payload carries no time
