"""The template context: Alertmanager's template data, the same for both sources."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from receiver.messages.filters import cut
from receiver.messages.links import silence_url
from receiver.model import Alert, Notification


def _capped(values: dict[str, str], cap: int | None) -> dict[str, str]:
    return values if cap is None else {k: cut(v, cap) for k, v in values.items()}


def alert_context(a: Alert, n: Notification, cap: int | None) -> dict[str, Any]:
    silence = a.silence_url
    if not silence and n.source == "alertmanager":
        silence = silence_url(n.external_url, a.labels)
    return {
        "status": a.status,
        "labels": _capped(a.labels, cap),
        "annotations": _capped(a.annotations, cap),
        "startsAt": a.starts_at,
        "endsAt": a.ends_at,
        "generatorURL": a.generator_url,
        "fingerprint": a.fingerprint,
        "values": a.values or {},
        "valueString": a.value_string,
        "silenceURL": silence,
        "dashboardURL": a.dashboard_url,
        "panelURL": a.panel_url,
        "imageURL": a.image_url,
    }


def context(n: Notification, alerts: list[dict[str, Any]], cap: int | None) -> dict[str, Any]:
    """The template context: Alertmanager's template data shape, for both sources.

    `alerts` are the contexts (`alert_context`) of the alerts shown; `cap` cuts every
    label and annotation value to that many characters.
    """
    return {
        "source": n.source,
        "status": n.status,
        "receiver": n.receiver,
        "alerts": alerts,
        "firing": [a for a in alerts if a["status"] == "firing"],
        "resolved": [a for a in alerts if a["status"] == "resolved"],
        "groupLabels": n.group_labels,
        "commonLabels": _capped(n.common_labels, cap),
        "commonAnnotations": _capped(n.common_annotations, cap),
        "externalURL": n.external_url,
        "truncatedAlerts": n.truncated_alerts,
    }


def notification_id(n: Notification, now: datetime) -> str:
    """A short id that differs for every notification, so DingTalk never dedups a repeat."""
    h = hashlib.sha256()
    h.update(
        f"{n.group_key}|{n.receiver}|{n.status}|{now.isoformat()}".encode(errors="surrogatepass")
    )
    for a in n.alerts:
        h.update(f"|{a.fingerprint}:{a.status}".encode(errors="surrogatepass"))
    return h.hexdigest()[:8]
