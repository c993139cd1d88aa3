"""Grafana bodies, unified and legacy, become the same model as Alertmanager's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from receiver.errors import PayloadError
from receiver.ingest.grafana import parse_grafana

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grafana"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def unified(**changes: Any) -> bytes:
    payload = json.loads(load("unified-firing.json"))
    payload.update(changes)
    return json.dumps(payload).encode()


def legacy(**changes: Any) -> bytes:
    payload = json.loads(load("legacy-alerting.json"))
    payload.update(changes)
    return json.dumps({k: v for k, v in payload.items() if v is not ...}).encode()


def test_unified_firing_from_docs():
    n = parse_grafana(load("unified-firing.json"))
    assert (n.source, n.receiver, n.status, n.state, n.org_id) == (
        "grafana",
        "My Super Webhook",
        "firing",
        "alerting",
        1,
    )
    assert n.title == "[FIRING:2]  (blue)"
    assert n.message.startswith("**Firing**")
    assert n.external_url == "https://play.grafana.org/"
    a = n.alerts[0]
    assert a.labels == {"alertname": "High memory usage", "team": "blue", "zone": "us-1"}
    assert a.values == {"B": 44.23943737541908, "C": 1}
    assert a.value_string.startswith("[ var='B'")
    assert a.silence_url.startswith("https://play.grafana.org/alerting/silence/new?")
    assert a.fingerprint == "c6eadffa33fcdf37"
    assert a.ends_at is None
    assert a.starts_at is not None and a.starts_at.utcoffset() is not None


def test_unified_resolved():
    n = parse_grafana(load("unified-resolved.json"))
    assert n.status == "resolved" and n.state == "ok"
    assert all(a.status == "resolved" and a.ends_at is not None for a in n.alerts)


def test_unified_mixed_with_newer_fields():
    n = parse_grafana(load("unified-mixed.json"))
    assert n.receiver == "ops.dingtalk"
    assert n.status == "firing"
    assert [a.status for a in n.firing] == ["firing"] and len(n.resolved) == 1
    assert n.alerts[0].values is None  # "values": null when the rule produced none
    r = n.resolved[0]
    assert r.rule_uid == "d1rdpdv7k"
    assert r.image_url.endswith("abc.png")


def test_unified_keeps_truncated_count():
    assert parse_grafana(unified(truncatedAlerts=7)).truncated_alerts == 7


def test_mimir_compatible_version_4_is_accepted():
    n = parse_grafana(
        (Path(__file__).resolve().parents[1] / "fixtures/alertmanager/firing-4.json").read_bytes()
    )
    assert n.source == "grafana" and len(n.alerts) == 4


def test_legacy_alerting_from_docs():
    n = parse_grafana(load("legacy-alerting.json"))
    assert (n.source, n.status, n.state, n.org_id) == ("grafana", "firing", "alerting", 1)
    (a,) = n.alerts
    assert a.labels == {"alertname": "Panel Title alert", "tag name": "tag value"}
    assert n.common_labels == a.labels
    assert a.annotations == {
        "summary": "[Alerting] Panel Title alert",
        "description": "Notification Message",
    }
    assert a.values == {"Count": 1}
    assert a.value_string == "[ metric='Count' labels={} value=1 ]"
    assert a.generator_url.startswith("http://localhost:3000/d/hZ7BuVbWz/")
    assert "&edit&" in a.generator_url  # Go's \u0026 decoded
    assert a.image_url.endswith("mixed_styles.png")
    assert len(a.fingerprint) == 16


def test_legacy_ok_is_resolved_and_same_fingerprint():
    firing = parse_grafana(load("legacy-alerting.json")).alerts[0]
    ok = parse_grafana(load("legacy-ok.json"))
    assert ok.status == "resolved" and ok.alerts[0].status == "resolved"
    assert ok.alerts[0].fingerprint == firing.fingerprint  # same rule, same alert


def test_legacy_no_data_fires():
    n = parse_grafana(load("legacy-no_data.json"))
    assert n.status == "firing" and n.state == "no_data"


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("alerting", "firing"),
        ("no_data", "firing"),
        ("pending", "firing"),
        ("ok", "resolved"),
        ("paused", "resolved"),
    ],
)
def test_legacy_states(state: str, status: str):
    assert parse_grafana(legacy(state=state)).status == status


def test_legacy_minimal_test_notification():
    # The oldest "Send test" body: no orgId, no tags, tags null inside evalMatches.
    body = json.dumps(
        {
            "evalMatches": [
                {"value": 100, "metric": "High value", "tags": None},
                {"value": None, "metric": "Higher Value", "tags": None},
            ],
            "message": "Someone is testing the alert notification within grafana.",
            "ruleId": 0,
            "ruleName": "Test notification",
            "ruleUrl": "https://localhost:3000/",
            "state": "alerting",
            "title": "[Alerting] Test notification",
        }
    ).encode()
    a = parse_grafana(body).alerts[0]
    assert a.values == {"High value": 100, "Higher Value": None}
    assert a.labels == {"alertname": "Test notification"}


BAD: list[tuple[str, bytes, str, str]] = [
    ("array", b"[{}]", "$", "expected an object"),
    ("neither format", b'{"status":"firing"}', "$", "not a Grafana webhook"),
    ("unknown version", unified(version="2"), "$.version", "unsupported version '2'"),
    ("orgId string", unified(orgId="1"), "$.orgId", "integer"),
    ("orgId bool", unified(orgId=False), "$.orgId", "boolean"),
    ("title number", unified(title=1), "$.title", "string"),
    ("state list", unified(state=[]), "$.state", "string"),
    ("appVersion int", unified(appVersion=11), "$.appVersion", "string"),
    ("alerts string", unified(alerts="x"), "$.alerts", "array"),
    ("legacy no ruleName", legacy(ruleName=...), "$", "'ruleName'"),
    ("legacy unknown state", legacy(state="firing"), "$.state", "unknown state 'firing'"),
    ("legacy tags int", legacy(tags={"a": 1}), "$.tags.a", "string"),
    ("legacy tags list", legacy(tags=["a"]), "$.tags", "object"),
    ("legacy evalMatches obj", legacy(evalMatches={}), "$.evalMatches", "array"),
    ("legacy match str", legacy(evalMatches=["x"]), "$.evalMatches[0]", "object"),
    ("legacy value str", legacy(evalMatches=[{"value": "1"}]), "$.evalMatches[0].value", "number"),
    (
        "legacy value huge",
        legacy(evalMatches=[{"value": 10**400}]),
        "$.evalMatches[0].value",
        "out of range",
    ),
    ("legacy ruleId str", legacy(ruleId="1"), "$.ruleId", "integer"),
    ("legacy panelId neg", legacy(panelId=-1), "$.panelId", "non-negative"),
]


def _alert(field: str, value: Any) -> bytes:
    payload = json.loads(load("unified-firing.json"))
    payload["alerts"][1][field] = value
    return json.dumps(payload).encode()


BAD += [
    ("values list", _alert("values", [1]), "$.alerts[1].values", "object"),
    ("values string", _alert("values", {"B": "44"}), "$.alerts[1].values.B", "number"),
    ("values bool", _alert("values", {"B": True}), "$.alerts[1].values.B", "number"),
    ("valueString int", _alert("valueString", 1), "$.alerts[1].valueString", "string"),
    ("silenceURL obj", _alert("silenceURL", {}), "$.alerts[1].silenceURL", "string"),
    ("imageURL int", _alert("imageURL", 0), "$.alerts[1].imageURL", "string"),
    ("ruleUID int", _alert("ruleUID", 0), "$.alerts[1].ruleUID", "string"),
    ("alert orgId str", _alert("orgId", "1"), "$.alerts[1].orgId", "integer"),
    ("alert label int", _alert("labels", {"x": 2}), "$.alerts[1].labels.x", "string"),
]


@pytest.mark.parametrize(("case", "body", "path", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_grafana_body(case: str, body: bytes, path: str, words: str):
    with pytest.raises(PayloadError) as e:
        parse_grafana(body)
    assert e.value.path == path
    assert words in e.value.message
