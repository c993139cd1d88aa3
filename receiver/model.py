"""The domain model every stage after ingest works on: one shape for both sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Source = Literal["alertmanager", "grafana"]
Status = Literal["firing", "resolved"]


@dataclass(frozen=True, init=False)
class Alert:
    """One alert. Its `__init__` is written out below: a frozen dataclass's sets each of
    the 14 fields through `object.__setattr__`, 1.7 µs an alert, and every webhook is
    parsed twice (accepted, then planned); this one sets them all at once, in 0.6
    (bench/README.md). tests/test_model.py holds it to the fields declared here."""

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None  # None for a firing alert (Alertmanager sends year 1)
    generator_url: str = ""
    fingerprint: str = ""
    # Grafana only; empty for Alertmanager.
    values: dict[str, Any] | None = None
    value_string: str = ""
    silence_url: str = ""
    dashboard_url: str = ""
    panel_url: str = ""
    image_url: str = ""
    rule_uid: str = ""  # Grafana's ruleUID (newer versions); "" when absent

    def __init__(
        self,
        status: Status,
        labels: dict[str, str],
        annotations: dict[str, str],
        starts_at: datetime | None,
        ends_at: datetime | None,
        generator_url: str = "",
        fingerprint: str = "",
        values: dict[str, Any] | None = None,
        value_string: str = "",
        silence_url: str = "",
        dashboard_url: str = "",
        panel_url: str = "",
        image_url: str = "",
        rule_uid: str = "",
    ) -> None:
        object.__setattr__(self, "__dict__", {
            "status": status, "labels": labels, "annotations": annotations,
            "starts_at": starts_at, "ends_at": ends_at, "generator_url": generator_url,
            "fingerprint": fingerprint, "values": values, "value_string": value_string,
            "silence_url": silence_url, "dashboard_url": dashboard_url,
            "panel_url": panel_url, "image_url": image_url, "rule_uid": rule_uid,
        })  # fmt: skip


@dataclass(frozen=True)
class Notification:
    source: Source
    receiver: str  # already unescaped (senders pass it through regexp.QuoteMeta)
    status: Status
    alerts: tuple[Alert, ...]
    group_labels: dict[str, str] = field(default_factory=dict)
    common_labels: dict[str, str] = field(default_factory=dict)
    common_annotations: dict[str, str] = field(default_factory=dict)
    external_url: str = ""
    group_key: str = ""
    truncated_alerts: int = 0
    # Grafana extras, kept for templates.
    title: str = ""
    message: str = ""
    org_id: int = 0  # Grafana orgId; 0 when absent or from Alertmanager
    state: str = ""  # Grafana `state` as sent: alerting/ok (unified), or the legacy rule state
    # The receiver's own page of the whole notification (/n/<token>), set when it is
    # planned with RECEIVER_EXTERNAL_URL and RECEIVER_SECRET_KEY; the "N more" link.
    more_url: str = ""

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")
