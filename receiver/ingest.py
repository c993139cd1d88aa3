"""Parse webhook bodies into a Notification. Pure: bytes in, model out, PayloadError otherwise."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from .errors import PayloadError
from .model import Alert, Notification, Status

_ZERO_TIME = "0001-01-01T00:00:00Z"
_QUOTEMETA = re.compile(r"\\([\\.+*?()|\[\]{}^$])")
MAX_DEPTH = 64


def unquote_meta(name: str) -> str:
    """Undo Go's regexp.QuoteMeta, which both senders apply to `receiver`."""
    return _QUOTEMETA.sub(r"\1", name)


def decode_json(body: bytes) -> Any:
    """Decode a UTF-8 JSON body; every failure becomes a PayloadError with a position."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError(f"body is not valid UTF-8 (byte {e.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
    except json.JSONDecodeError as e:
        raise PayloadError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


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


def parse_time(value: str, path: str) -> datetime | None:
    """RFC 3339 with any sub-second precision; Go's zero time becomes None."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if m and m.group(2):  # Python accepts at most 6 fractional digits
        text = m.group(1) + m.group(2)[:7] + m.group(3)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"not an RFC 3339 time: {value!r}", path=path) from None
    if parsed.tzinfo is None:
        raise PayloadError(f"time without a zone: {value!r}", path=path)
    return parsed


def _int(obj: dict[str, Any], key: str, path: str) -> int:
    value = obj.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError("expected a non-negative integer", path=f"{path}.{key}")
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


def parse_alertmanager(body: bytes) -> Notification:
    """Alertmanager webhook payload version "4"."""
    payload = _obj(decode_json(body), "$")
    version = payload.get("version")
    if version != "4":
        raise PayloadError(f'unsupported version {version!r}; expected "4"', path="$.version")
    alerts = tuple(parse_am_alert(a, f"$.alerts[{i}]") for i, a in enumerate(_alerts(payload)))
    return Notification(
        source="alertmanager",
        receiver=unquote_meta(_str(payload, "receiver", "$", required=False)),
        status=_status(payload, "$"),
        alerts=alerts,
        group_labels=_kv(payload, "groupLabels", "$"),
        common_labels=_kv(payload, "commonLabels", "$"),
        common_annotations=_kv(payload, "commonAnnotations", "$"),
        external_url=_str(payload, "externalURL", "$", required=False),
        group_key=_str(payload, "groupKey", "$", required=False),
        truncated_alerts=_int(payload, "truncatedAlerts", "$"),
    )
