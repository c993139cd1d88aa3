"""Links a message points to: the sender's silence form and its list of the group. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import quote

from receiver.messages.tokens import sign
from receiver.model import Alert, Notification


def _matchers(labels: dict[str, str]) -> str:
    def q(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{q(v)}"' for k, v in sorted(labels.items())) + "}"


def _q(text: str) -> str:
    """%-encode all of it; a lone surrogate (valid in a JSON payload) becomes '?'."""
    return quote(text, safe="", errors="replace")


def silence_url(external_url: str, labels: dict[str, str]) -> str:
    """Alertmanager's "new silence" page, pre-filled with these labels."""
    base = external_url.rstrip("/")
    return f"{base}/#/silences/new?filter={_q(_matchers(labels))}" if base else ""


def more_url(n: Notification) -> str:
    """Where the whole group can be seen (see docs/templates.md): the receiver's own page
    when it has one, else the sender's alert list."""
    if n.more_url:
        return n.more_url
    base = n.external_url.rstrip("/")
    if not base:
        return ""
    if n.source == "grafana":
        return f"{base}/alerting/list"
    return f"{base}/#/alerts?filter={_q(_matchers(n.group_labels))}"


NOTIFICATION_PAGE = "n"  # the token purpose of /n/<token>


def notification_url(
    external_url: str | None, secret_key: str | None, notification_id: int, expires_at: float
) -> str:
    """The receiver's signed page of one whole notification, or "" without both settings."""
    if not (external_url and secret_key):
        return ""
    token = sign(secret_key, NOTIFICATION_PAGE, {"n": notification_id}, expires_at=expires_at)
    return f"{external_url.rstrip('/')}/n/{token}"


def group_silence_url(n: Notification, alerts: Sequence[Alert]) -> str:
    """Silence the whole group (Alertmanager), or the first alert's silence (Grafana)."""
    if n.source == "alertmanager":
        labels = n.group_labels or (alerts[0].labels if alerts else {})
        return silence_url(n.external_url, labels) if labels else ""
    return next((a.silence_url for a in alerts if a.silence_url), "")


def buttons(
    n: Notification, alerts: Sequence[Alert], words: dict[str, str]
) -> tuple[tuple[str, str], ...]:
    """action_card buttons: source, silence, dashboard and panel, each when there is a link."""

    def first(get: Callable[[Alert], str]) -> str:
        return next((get(a) for a in alerts if get(a)), "")

    found = [
        (words["source"], first(lambda a: a.generator_url)),
        (words["silence"], group_silence_url(n, alerts)),
        (words["dashboard"], first(lambda a: a.dashboard_url)),
        (words["panel"], first(lambda a: a.panel_url)),
    ]
    return tuple((t, u) for t, u in found if u)
