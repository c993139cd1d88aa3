"""Grafana webhook bodies into the same Notification as Alertmanager's. Pure.

Two formats arrive on /grafana (PAYLOADS.md §4-5):

- Grafana Alerting ("unified", Grafana 8+), version "1": Alertmanager's shape plus
  orgId, title, state, message, and per alert values, valueString, silenceURL,
  dashboardURL, panelURL, imageURL (and, in newer versions, ruleUID and orgId).
  Grafana's Mimir-compatible webhook sends Alertmanager's version "4" shape, also taken.
- Legacy Grafana alerting (<= 7.x): one rule state change per request, with ruleName,
  ruleId, state, evalMatches and tags. It becomes a Notification with one alert:
  tags become labels (plus alertname = ruleName), `ok` and `paused` mean resolved.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any

from receiver.errors import PayloadError
from receiver.ingest.alertmanager import (
    _alerts,
    _int,
    _kind,
    _kv,
    _obj,
    _str,
    group_fields,
    parse_am_alert,
)
from receiver.ingest.jsonbody import decode_json, decode_stored
from receiver.model import Alert, Notification, Status

# Legacy rule states (GG pkg/services/alerting notifiers docs) and what they mean here.
LEGACY_STATES: dict[str, Status] = {
    "alerting": "firing",
    "no_data": "firing",  # nobody is looking at the data: someone should
    "pending": "firing",
    "ok": "resolved",
    "paused": "resolved",  # the rule stopped evaluating; nothing is firing any more
}


def parse_grafana(body: bytes, *, stored: bool = False) -> Notification:
    """A Grafana webhook body, unified (version "1") or legacy, as a Notification.
    `stored`: as for parse_alertmanager."""
    payload = _obj((decode_stored if stored else decode_json)(body), "$")
    if "alerts" in payload:
        return _unified(payload)
    if "ruleName" in payload or "evalMatches" in payload:
        return _legacy(payload)
    raise PayloadError(
        "not a Grafana webhook: expected 'alerts' (Grafana Alerting) "
        "or 'ruleName'/'evalMatches' (legacy alerting)",
        path="$",
    )


def _values(raw: dict[str, Any], path: str) -> dict[str, Any] | None:
    if raw.get("values") is None:
        return None
    values = _obj(raw["values"], f"{path}.values")
    for ref, v in values.items():
        _number(v, f"{path}.values.{ref}")
    return dict(values)


def _number(v: Any, path: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PayloadError(f"expected a number, got {_kind(v)}", path=path)
    try:
        finite = math.isfinite(float(v))
    except OverflowError:
        finite = False
    if not finite:
        raise PayloadError("number out of range", path=path)


def _unified_alert(raw: dict[str, Any], path: str) -> Alert:
    alert = parse_am_alert(raw, path)
    if "orgId" in raw:  # newer Grafana; validated, the top-level orgId is what we keep
        _int(raw, "orgId", path)
    return replace(
        alert,
        values=_values(raw, path),
        value_string=_str(raw, "valueString", path, required=False),
        silence_url=_str(raw, "silenceURL", path, required=False),
        dashboard_url=_str(raw, "dashboardURL", path, required=False),
        panel_url=_str(raw, "panelURL", path, required=False),
        image_url=_str(raw, "imageURL", path, required=False),
        rule_uid=_str(raw, "ruleUID", path, required=False),
    )


def _unified(payload: dict[str, Any]) -> Notification:
    version = payload.get("version")
    if version not in ("1", "4"):
        raise PayloadError(
            f'unsupported version {version!r}; expected "1" (Grafana Alerting)', path="$.version"
        )
    raw_alerts = _alerts(payload)
    alerts = tuple(_unified_alert(a, f"$.alerts[{i}]") for i, a in enumerate(raw_alerts))
    _str(payload, "appVersion", "$", required=False)  # accepted when present, typed
    return Notification(
        source="grafana",
        alerts=alerts,
        **group_fields(payload),
        title=_str(payload, "title", "$", required=False),
        message=_str(payload, "message", "$", required=False),
        org_id=_int(payload, "orgId", "$"),
        state=_str(payload, "state", "$", required=False),
    )


def _fingerprint(labels: dict[str, str]) -> str:
    """16 hex characters over the sorted label set: stable for the same rule and tags."""
    h = hashlib.sha256()
    for name in sorted(labels):
        h.update(name.encode() + b"\xff" + labels[name].encode() + b"\xff")
    return h.hexdigest()[:16]


def _eval_matches(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """evalMatches as values (metric -> value) and a valueString in Grafana's old format."""
    raw = payload.get("evalMatches")
    if raw is None:
        return {}, ""
    if not isinstance(raw, list):
        raise PayloadError(f"expected an array, got {_kind(raw)}", path="$.evalMatches")
    values: dict[str, Any] = {}
    parts: list[str] = []
    for i, m in enumerate(raw):
        path = f"$.evalMatches[{i}]"
        match = _obj(m, path)
        metric = _str(match, "metric", path, required=False)
        value = match.get("value")
        if value is not None:
            _number(value, f"{path}.value")
        tags = _kv(match, "tags", path)
        values[metric] = value
        shown = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
        parts.append(f"[ metric='{metric}' labels={{{shown}}} value={value} ]")
    return values, ", ".join(parts)


def _legacy(payload: dict[str, Any]) -> Notification:
    rule_name = _str(payload, "ruleName", "$")
    state = _str(payload, "state", "$")
    if state not in LEGACY_STATES:
        raise PayloadError(
            f"unknown state {state!r}; expected one of {', '.join(LEGACY_STATES)}",
            path="$.state",
        )
    status = LEGACY_STATES[state]
    labels = {"alertname": rule_name, **_kv(payload, "tags", "$")}
    title = _str(payload, "title", "$", required=False)
    message = _str(payload, "message", "$", required=False)
    annotations = {k: v for k, v in (("summary", title), ("description", message)) if v}
    values, value_string = _eval_matches(payload)
    rule_id = _int(payload, "ruleId", "$")
    org_id = _int(payload, "orgId", "$")
    for key in ("dashboardId", "panelId"):
        _int(payload, key, "$")
    alert = Alert(
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=None,  # legacy payloads carry no times
        ends_at=None,
        generator_url=_str(payload, "ruleUrl", "$", required=False),
        fingerprint=_fingerprint(labels),
        values=values,
        value_string=value_string,
        image_url=_str(payload, "imageUrl", "$", required=False),
    )
    return Notification(
        source="grafana",
        receiver="",
        status=status,
        alerts=(alert,),
        group_labels={"alertname": rule_name},
        common_labels=dict(labels),
        common_annotations=dict(annotations),
        group_key=f"grafana-legacy:{org_id}:{rule_id}:{rule_name}",
        title=title,
        message=message,
        org_id=org_id,
        state=state,
    )
