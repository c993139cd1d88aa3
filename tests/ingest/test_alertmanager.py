"""Parsing: fixtures become the model; every bad body is a PayloadError naming the path."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from receiver.errors import PayloadError
from receiver.ingest.alertmanager import parse_alertmanager, unquote_meta
from receiver.ingest.jsonbody import decode_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def am(**changes: Any) -> bytes:
    payload = json.loads(load("alertmanager/firing-4.json"))
    payload.update(changes)
    return json.dumps(payload).encode()


# --- Alertmanager fixtures -------------------------------------------------------------


def test_firing_four():
    n = parse_alertmanager(load("alertmanager/firing-4.json"))
    assert n.source == "alertmanager"
    assert n.receiver == "ops.dingtalk"  # QuoteMeta undone
    assert n.status == "firing"
    assert len(n.alerts) == 4
    assert all(a.ends_at is None for a in n.alerts)  # 0001-01-01 zero time
    assert n.alerts[0].starts_at == datetime(2026, 11, 28, 3, 11, 15, 921000, tzinfo=UTC)
    assert n.group_labels == {"alertname": "DiskFull", "cluster": "sh-prod-1"}
    assert n.common_labels["team"] == "db"


def test_mixed_keeps_each_alert_status():
    n = parse_alertmanager(load("alertmanager/mixed.json"))
    assert n.status == "firing"
    assert [a.status for a in n.alerts] == ["firing", "resolved", "firing"]
    assert n.resolved[0].ends_at == datetime(2026, 11, 28, 4, 3, 0, 500000, tzinfo=UTC)


def test_resolved_and_truncated():
    assert parse_alertmanager(load("alertmanager/resolved.json")).status == "resolved"
    assert parse_alertmanager(load("alertmanager/truncated.json")).truncated_alerts == 52
    assert len(parse_alertmanager(load("alertmanager/many-55.json")).alerts) == 55


def test_hostile_text_survives_byte_for_byte():
    n = parse_alertmanager(load("alertmanager/hostile-text.json"))
    a = n.alerts[0]
    assert n.receiver == "支付.oncall"
    assert a.labels["alertname"] == "接口错误率过高"
    assert "<b>&amp;</b>" in a.annotations["description"]  # Go's \u003c escapes decoded
    assert "\n# 不是标题\n" in a.annotations["description"]
    assert a.annotations["summary"].startswith("🔥")


def test_big_annotation():
    a = parse_alertmanager(load("alertmanager/big-annotation.json")).alerts[0]
    assert len(a.annotations["description"]) == 10240


@pytest.mark.parametrize(
    ("quoted", "name"),
    [
        ("ops\\.dingtalk", "ops.dingtalk"),
        ("a\\+b\\(c\\)", "a+b(c)"),
        ("plain name", "plain name"),
        ("x\\\\y", "x\\y"),
        ("\\[\\]\\{\\}\\^\\$\\*\\?\\|", "[]{}^$*?|"),
    ],
)
def test_unquote_meta(quoted: str, name: str):
    assert unquote_meta(quoted) == name


def test_nanosecond_times():
    n = parse_alertmanager(load("alertmanager/many-55.json"))
    assert n.alerts[0].starts_at is not None and n.alerts[0].starts_at.microsecond == 0


# --- bad bodies: PayloadError with the JSON path of the bad field -------------------------

BAD: list[tuple[str, bytes, str, str]] = [
    # (case, body, path, words in the message)
    ("empty", b"", "$", "invalid JSON"),
    ("truncated", load("alertmanager/firing-4.json")[:200], "$", "invalid JSON"),
    ("not utf-8", b'{"receiver":"\xff"}', "$", "UTF-8"),
    ("array", b"[]", "$", "expected an object, got an array"),
    ("string", b'"x"', "$", "got a string"),
    ("null", b"null", "$", "got null"),
    ("nan", b'{"version":"4","x":NaN}', "$", "NaN"),
    ("infinity", b'{"version":"4","x":-Infinity}', "$", "Infinity"),
    ("overflow float", b'{"version":"4","x":1e400}', "$", "out of range"),
    ("huge int", b'{"version":"4","x":' + b"9" * 5000 + b"}", "$", "too many digits"),
    ("duplicate key", b'{"version":"4","version":"4"}', "$", "duplicate key 'version'"),
    ("lone surrogate", b'{"version":"4","receiver":"\\ud800"}', "$.receiver", "surrogate"),
    ("surrogate key", b'{"version":"4","labels":{"\\udfff":"x"}}', "$.labels", "surrogate"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "$", "nested too deeply"),
    ("no version", am(version=None), "$.version", "unsupported version"),
    ("wrong version", am(version="1"), "$.version", "unsupported version '1'"),
    ("int version", am(version=4), "$.version", "unsupported version 4"),
    ("no alerts", am(alerts=None), "$", "missing required field 'alerts'"),
    ("alerts object", am(alerts={}), "$.alerts", "expected an array, got an object"),
    ("alert not object", am(alerts=[1]), "$.alerts[0]", "expected an object, got a number"),
    ("status wrong", am(status="ok"), "$.status", "status must be"),
    ("status missing", am(status=None), "$", "missing required field 'status'"),
    ("receiver number", am(receiver=5), "$.receiver", "expected a string, got a number"),
    ("groupLabels array", am(groupLabels=[]), "$.groupLabels", "expected an object"),
    ("label value int", am(commonLabels={"a": 1}), "$.commonLabels.a", "expected a string"),
    ("label value null", am(commonLabels={"a": None}), "$.commonLabels.a", "got null"),
    ("truncated bool", am(truncatedAlerts=True), "$.truncatedAlerts", "got a boolean"),
    ("truncated neg", am(truncatedAlerts=-1), "$.truncatedAlerts", "non-negative"),
    ("truncated float", am(truncatedAlerts=1.5), "$.truncatedAlerts", "integer"),
    ("truncated huge", am(truncatedAlerts=2**64), "$.truncatedAlerts", "64-bit"),
]


def _alert_mutation(field: str, value: Any) -> bytes:
    payload = json.loads(load("alertmanager/firing-4.json"))
    if value is ...:
        del payload["alerts"][2][field]
    else:
        payload["alerts"][2][field] = value
    return json.dumps(payload).encode()


BAD += [
    ("alert labels missing", _alert_mutation("labels", ...), "$.alerts[2]", "'labels'"),
    ("alert status missing", _alert_mutation("status", ...), "$.alerts[2]", "'status'"),
    ("alert label int", _alert_mutation("labels", {"a": 1}), "$.alerts[2].labels.a", "string"),
    ("alert ann list", _alert_mutation("annotations", ["x"]), "$.alerts[2].annotations", "array"),
    ("startsAt junk", _alert_mutation("startsAt", "yesterday"), "$.alerts[2].startsAt", "RFC 3339"),
    (
        "startsAt no zone",
        _alert_mutation("startsAt", "2026-11-28T03:00:00"),
        "$.alerts[2].startsAt",
        "without a zone",
    ),
    ("startsAt number", _alert_mutation("startsAt", 0), "$.alerts[2].startsAt", "string"),
    # Valid RFC 3339, but no time zone can show it: rendering would overflow, for ever.
    (
        "startsAt year 9999",
        _alert_mutation("startsAt", "9999-12-31T20:00:00Z"),
        "$.alerts[2].startsAt",
        "out of range",
    ),
    (
        "endsAt near year 1",
        _alert_mutation("endsAt", "0001-01-02T00:00:00+23:00"),
        "$.alerts[2].endsAt",
        "out of range",
    ),
    ("fingerprint obj", _alert_mutation("fingerprint", {}), "$.alerts[2].fingerprint", "string"),
]


@pytest.mark.parametrize(("case", "body", "path", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_alertmanager_body(case: str, body: bytes, path: str, words: str):
    with pytest.raises(PayloadError) as e:
        parse_alertmanager(body)
    assert e.value.status == 400
    assert e.value.path == path
    assert words in e.value.message


def test_nesting_within_python_limits_is_harmless():
    # 500 levels in an ignored field: decodes, and the parser never walks into it.
    body = am(extra=json.loads("[" * 500 + "]" * 500))
    assert len(parse_alertmanager(body).alerts) == 4


def test_decode_accepts_valid_surrogate_pairs():
    assert decode_json(b'{"e":"\\ud83d\\ude00"}') == {"e": "😀"}


def test_ten_thousand_alerts_parse_quickly():
    # Decision (docs/grafana.md): accepted when the body fits RECEIVER_MAX_BODY_BYTES.
    payload = json.loads(load("alertmanager/many-55.json"))
    one = payload["alerts"][0]
    payload["alerts"] = [
        {**one, "labels": {**one["labels"], "instance": f"n{i}"}} for i in range(10_000)
    ]
    body = json.dumps(payload).encode()
    started = time.perf_counter()
    n = parse_alertmanager(body)
    assert len(n.alerts) == 10_000
    assert time.perf_counter() - started < 2.0


def _nested(depth: int) -> bytes:
    """firing-4.json with `depth` levels of arrays in an extra, ignored field."""
    head = load("alertmanager/firing-4.json").rstrip()[:-1]
    return head + b',"extra":' + b"[" * depth + b"]" * depth + b"}"


def _verdict_from_deeper(body: bytes, frames: int) -> str:
    """parse_alertmanager's verdict, from a call stack `frames` deeper than the caller's."""
    if frames:
        return _verdict_from_deeper(body, frames - 1)
    try:
        parse_alertmanager(body)
    except PayloadError as e:
        return e.message
    return "accepted"


@pytest.mark.parametrize("depth", [600, 700, 800, 900])
def test_nesting_verdict_does_not_depend_on_the_callers_stack(depth: int):
    # The web worker validates a body, then the delivery process parses the stored body
    # again from another call stack. A body accepted by one and "nested too deeply" in
    # the other is a 2xx for an alert that is never delivered.
    body = _nested(depth)
    assert _verdict_from_deeper(body, 0) == _verdict_from_deeper(body, 300)
