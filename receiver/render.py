"""Render a Notification into a DingTalk `msg` object within the byte budget. Pure.

Spine version: one markdown template, a uniqueness footer, a hard byte cap.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from .model import Alert, Notification

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "default.md.j2"


def msg_size(msg: dict[str, Any]) -> int:
    """Bytes of the compact UTF-8 JSON of `msg`, as DingTalk counts them."""
    return len(json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _alert_ctx(a: Alert) -> dict[str, Any]:
    return {
        "status": a.status,
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": a.starts_at,
        "endsAt": a.ends_at,
        "generatorURL": a.generator_url,
        "fingerprint": a.fingerprint,
        "values": a.values,
        "silenceURL": a.silence_url,
        "dashboardURL": a.dashboard_url,
        "panelURL": a.panel_url,
        "imageURL": a.image_url,
    }


def context(n: Notification) -> dict[str, Any]:
    """The template context: Alertmanager's template data shape, for both sources."""
    alerts = [_alert_ctx(a) for a in n.alerts]
    return {
        "source": n.source,
        "status": n.status,
        "receiver": n.receiver,
        "alerts": alerts,
        "firing": [a for a in alerts if a["status"] == "firing"],
        "resolved": [a for a in alerts if a["status"] == "resolved"],
        "groupLabels": n.group_labels,
        "commonLabels": n.common_labels,
        "commonAnnotations": n.common_annotations,
        "externalURL": n.external_url,
        "truncatedAlerts": n.truncated_alerts,
    }


def notification_id(n: Notification, now: datetime) -> str:
    """A short id that differs for every notification, so DingTalk never dedups a repeat."""
    h = hashlib.sha256()
    h.update(f"{n.group_key}|{n.receiver}|{n.status}|{now.isoformat()}".encode())
    for a in n.alerts:
        h.update(f"|{a.fingerprint}:{a.status}".encode())
    return h.hexdigest()[:8]


@dataclass(frozen=True)
class Message:
    msg: dict[str, Any]
    title: str

    @property
    def size(self) -> int:
        return msg_size(self.msg)


class Renderer:
    def __init__(
        self, templates_dir: str, *, timezone: str = "Asia/Shanghai", max_bytes: int = 2048
    ):
        self.tz = ZoneInfo(timezone)
        self.max_bytes = max_bytes
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(templates_dir), undefined=StrictUndefined, autoescape=False
        )
        self.env.filters["localtime"] = self._localtime

    def _localtime(self, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return value.astimezone(self.tz).strftime(fmt) if value else ""

    def render(
        self, n: Notification, *, template: str | None = None, now: datetime | None = None
    ) -> Message:
        now = now or datetime.now(UTC)
        ctx = context(n)
        title = _title(n)
        try:
            text = self.env.get_template(template or DEFAULT_TEMPLATE).render(ctx, title=title)
        except TemplateError as e:
            log.warning("template_failed template=%s error=%s", template, e)
            text = self.env.get_template(DEFAULT_TEMPLATE).render(ctx, title=title)
        footer = f"\n\n###### {self._localtime(now)} · {notification_id(n, now)}"
        msg = _markdown(title, text + footer)
        if msg_size(msg) > self.max_bytes:
            msg = _markdown(title, _fit(text, footer, title, self.max_bytes))
        return Message(msg=msg, title=title)


def _title(n: Notification) -> str:
    name = n.common_labels.get("alertname") or n.group_labels.get("alertname") or n.receiver
    if n.status == "firing":
        return f"[FIRING:{len(n.firing)}] {name}"
    return f"[RESOLVED] {name}"


def _markdown(title: str, text: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


def _fit(text: str, footer: str, title: str, budget: int) -> str:
    """Cut `text` on a character boundary so the message fits, keeping the footer."""
    marker = "\n…"
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if msg_size(_markdown(title, text[:mid] + marker + footer)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + marker + footer
