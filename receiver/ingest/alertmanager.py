"""Parse webhook bodies into a Notification. Pure: bytes in, model out, PayloadError otherwise."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from receiver.errors import PayloadError
from receiver.ingest.jsonbody import decode_json, decode_stored
from receiver.model import Alert, Notification, Status

_MAX_INT64 = 2**63 - 1  # Go int on 64-bit: the senders never exceed it
_QUOTEMETA = re.compile(r"\\([\\.+*?()|\[\]{}^$])")


def unquote_meta(name: str) -> str:
    """Undo Go's regexp.QuoteMeta, which both senders apply to `receiver`."""
    return _QUOTEMETA.sub(r"\1", name)


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"expected an object, got {_kind(value)}", path=path)
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _str(obj: dict[str, Any], key: str, path: str, *, required: bool = True) -> str:
    if key not in obj or obj[key] is None:
        if required:
            raise PayloadError(f"missing required field {key!r}", path=path)
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise PayloadError(f"expected a string, got {_kind(value)}", path=f"{path}.{key}")
    return value


def _kv(obj: dict[str, Any], key: str, path: str, *, required: bool = False) -> dict[str, str]:
    if key not in obj or obj[key] is None:
        if required:
            raise PayloadError(f"missing required field {key!r}", path=path)
        return {}
    mapping = _obj(obj[key], f"{path}.{key}")
    for k, v in mapping.items():
        if not isinstance(v, str):
            raise PayloadError(f"expected a string, got {_kind(v)}", path=f"{path}.{key}.{k}")
    return dict(mapping)


def _status(obj: dict[str, Any], path: str) -> Status:
    value = _str(obj, "status", path)
    if value not in ("firing", "resolved"):
        raise PayloadError(
            f"status must be 'firing' or 'resolved', got {value!r}", path=f"{path}.status"
        )
    return "firing" if value == "firing" else "resolved"


# Shown in RECEIVER_TIMEZONE, a time a day from either end of datetime's range overflows
# in the delivery process, which would then defer the accepted webhook for ever.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def parse_time(value: str, path: str) -> datetime | None:
    """RFC 3339 with any sub-second precision; Go's zero time becomes None."""
    if not value or value.startswith("0001-01-01"):
        return None
    try:  # the common case, "2026-11-28T10:00:00.123456789Z", in one C call
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_time_slow(value, path)
    if parsed.tzinfo is None:
        raise PayloadError(f"time without a zone: {value!r}", path=path)
    if not _EARLIEST <= parsed <= _LATEST:
        raise PayloadError(f"time out of range: {value!r}", path=path)
    return parsed


def _parse_time_slow(value: str, path: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m and m.group(2):  # Python accepts at most 6 fractional digits
        text = m.group(1) + m.group(2)[:7] + m.group(3)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"not an RFC 3339 time: {value!r}", path=path) from None


def _int(obj: dict[str, Any], key: str, path: str) -> int:
    value = obj.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT64:
        raise PayloadError(
            f"expected a non-negative 64-bit integer, got {_kind(value)}", path=f"{path}.{key}"
        )
    return value


def _alerts(payload: dict[str, Any], path: str = "$") -> list[dict[str, Any]]:
    raw = payload.get("alerts")
    if not isinstance(raw, list):
        raise PayloadError(
            "missing required field 'alerts'"
            if raw is None
            else f"expected an array, got {_kind(raw)}",
            path=f"{path}.alerts" if raw is not None else path,
        )
    return [_obj(a, f"{path}.alerts[{i}]") for i, a in enumerate(raw)]


def _plain_kv(value: Any) -> dict[str, str] | None:
    """A label or annotation map that needs no checking (the parse's own, not copied);
    None to check it."""
    if type(value) is not dict:
        return None
    for v in value.values():
        if type(v) is not str:
            return None
    return value


class _Unusual(Exception):
    """The fast path declines: the field-by-field check takes over (and names the field)."""


def _plain_time(value: Any) -> datetime | None:
    """parse_time's common case, with no path made; _Unusual for anything else."""
    if value is None or value == "" or (type(value) is str and value.startswith("0001-01-01")):
        return None
    if type(value) is not str:
        raise _Unusual
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Unusual from None
    if parsed.tzinfo is None or not _EARLIEST <= parsed <= _LATEST:
        raise _Unusual
    return parsed


def _plain_am_alert(raw: Any) -> Alert | None:
    """An alert as Alertmanager sends it, checked without a path string made for every
    field; None for anything out of the ordinary, which parse_am_alert then checks field
    by field (and names)."""
    if type(raw) is not dict:
        return None
    get = raw.get
    labels = _plain_kv(get("labels"))
    annotations = {} if get("annotations") is None else _plain_kv(get("annotations"))
    status = get("status")
    url, fingerprint = get("generatorURL", ""), get("fingerprint", "")
    if (
        labels is None or annotations is None or (status != "firing" and status != "resolved")
        or type(url) is not str or type(fingerprint) is not str
    ):  # fmt: skip
        return None
    try:
        starts_at, ends_at = _plain_time(get("startsAt")), _plain_time(get("endsAt"))
    except _Unusual:
        return None
    return Alert(
        status=status, labels=labels, annotations=annotations, starts_at=starts_at,
        ends_at=ends_at, generator_url=url, fingerprint=fingerprint,
    )  # fmt: skip


def parse_am_alert(raw: dict[str, Any], path: str) -> Alert:
    labels = _kv(raw, "labels", path, required=True)
    return Alert(
        status=_status(raw, path),
        labels=labels,
        annotations=_kv(raw, "annotations", path),
        starts_at=parse_time(_str(raw, "startsAt", path, required=False), f"{path}.startsAt"),
        ends_at=parse_time(_str(raw, "endsAt", path, required=False), f"{path}.endsAt"),
        generator_url=_str(raw, "generatorURL", path, required=False),
        fingerprint=_str(raw, "fingerprint", path, required=False),
    )


def group_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The Alertmanager-shaped group fields that both senders share."""
    return {
        "receiver": unquote_meta(_str(payload, "receiver", "$", required=False)),
        "status": _status(payload, "$"),
        "group_labels": _kv(payload, "groupLabels", "$"),
        "common_labels": _kv(payload, "commonLabels", "$"),
        "common_annotations": _kv(payload, "commonAnnotations", "$"),
        "external_url": _str(payload, "externalURL", "$", required=False),
        "group_key": _str(payload, "groupKey", "$", required=False),
        "truncated_alerts": _int(payload, "truncatedAlerts", "$"),
    }


# Top-level keys that only Grafana sends (unified and legacy), never Alertmanager.
GRAFANA_ONLY = ("orgId", "ruleName", "evalMatches", "ruleUrl")


def parse_alertmanager(body: bytes, *, stored: bool = False) -> Notification:
    """Alertmanager webhook payload version "4". `stored`: a body accepted before, whose
    JSON was checked then (receiver.ingest.jsonbody.decode_stored)."""
    payload = _obj((decode_stored if stored else decode_json)(body), "$")
    version = payload.get("version")
    if version != "4":
        if any(k in payload for k in GRAFANA_ONLY):
            raise PayloadError("this looks like a Grafana payload: post it to /grafana", path="$")
        raise PayloadError(f'unsupported version {version!r}; expected "4"', path="$.version")
    raw = payload.get("alerts")
    plain = tuple(map(_plain_am_alert, raw)) if type(raw) is list else (None,)
    if None in plain:  # out of the ordinary: checked field by field, the culprit named
        alerts = tuple(parse_am_alert(a, f"$.alerts[{i}]") for i, a in enumerate(_alerts(payload)))
    else:
        alerts = cast(tuple[Alert, ...], plain)
    return Notification(source="alertmanager", alerts=alerts, **group_fields(payload))
