"""Alertmanager silences (API v2), for "acknowledge and silence": the one place that calls it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import requests

from receiver.errors import SilenceError


def silence_matchers(labels: Mapping[str, str]) -> list[dict[str, object]]:
    return [
        {"name": k, "value": v, "isRegex": False, "isEqual": True}
        for k, v in sorted(labels.items())
    ]


def create_silence(
    base_url: str,
    labels: Mapping[str, str],
    *,
    starts: float,
    ends: float,
    created_by: str,
    comment: str,
    timeout: float = 10.0,
) -> str:
    """POST /api/v2/silences; the new silence's id. SilenceError when it was not created."""
    if not labels:
        raise SilenceError("the group has no labels to match; silence it in Alertmanager")
    body = {
        "matchers": silence_matchers(labels),
        "startsAt": datetime.fromtimestamp(starts, UTC).isoformat(),
        "endsAt": datetime.fromtimestamp(ends, UTC).isoformat(),
        "createdBy": created_by,
        "comment": comment,
    }
    url = f"{base_url.rstrip('/')}/api/v2/silences"
    try:
        res = requests.post(url, json=body, timeout=timeout)
    except requests.RequestException as e:
        raise SilenceError(f"Alertmanager at {base_url}: {type(e).__name__}") from None
    if res.status_code != 200:
        raise SilenceError(f"Alertmanager answered HTTP {res.status_code}: {res.text[:200]}")
    try:
        silence_id = res.json()["silenceID"]
    except (ValueError, KeyError, TypeError):
        raise SilenceError("Alertmanager's reply has no silenceID") from None
    return str(silence_id)
