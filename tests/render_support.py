"""Helpers shared by the render tests: fixture loading and a fixed clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receiver.ingest.alertmanager import parse_alertmanager, parse_time
from receiver.messages.render import Renderer
from receiver.model import Alert, Notification

FIXTURES = Path(__file__).parent / "fixtures" / "render"
TEMPLATES = str(Path(__file__).parent.parent / "templates")
# Five minutes after the fixtures' alerts started (03:14:15.926Z).
NOW = datetime(2026, 11, 28, 3, 19, 15, tzinfo=UTC)


def am(name: str) -> Notification:
    return parse_alertmanager((FIXTURES / f"{name}.json").read_bytes())


def grafana(name: str) -> Notification:
    """A Grafana fixture as the model, built here so these tests don't wait on ingest."""
    raw: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    alerts = tuple(
        Alert(
            status=a["status"],
            labels=a["labels"],
            annotations=a["annotations"],
            starts_at=parse_time(a["startsAt"], "startsAt"),
            ends_at=parse_time(a["endsAt"], "endsAt"),
            generator_url=a["generatorURL"],
            fingerprint=a["fingerprint"],
            values=a["values"],
            value_string=a["valueString"],
            silence_url=a["silenceURL"],
            dashboard_url=a["dashboardURL"],
            panel_url=a["panelURL"],
            image_url=a["imageURL"],
        )
        for a in raw["alerts"]
    )
    return Notification(
        source="grafana",
        receiver=raw["receiver"],
        status=raw["status"],
        alerts=alerts,
        group_labels=raw["groupLabels"],
        common_labels=raw["commonLabels"],
        common_annotations=raw["commonAnnotations"],
        external_url=raw["externalURL"],
        group_key=raw["groupKey"],
        truncated_alerts=raw["truncatedAlerts"],
        title=raw["title"],
        message=raw["message"],
    )


def renderer(**kwargs: Any) -> Renderer:
    return Renderer(TEMPLATES, **kwargs)


def body(msg: dict[str, Any]) -> str:
    """The text a person reads, whatever the msgtype."""
    kind = msg["msgtype"]
    part = msg[kind]
    return str(part.get("text") or part.get("content") or part.get("markdown"))
