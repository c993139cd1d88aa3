"""The acknowledge page, `/ack/<token>`: one notification, for the one person it was sent to.

GET shows the alerts, who was notified, who has read it and who acknowledged, with
the buttons; it never changes anything (link previews and phone browsers prefetch).
POST (a button) acknowledges as the token's person, and with `silence` also creates
an Alertmanager silence. A forged, altered or expired token, or one whose
notification is gone, gets the same 403 page and changes nothing.
"""

from __future__ import annotations

import time
from datetime import datetime

from flask import Blueprint, render_template_string, request

from receiver.delivery.acks import acknowledge
from receiver.delivery.escalate import PARSERS, name_of
from receiver.delivery.escalation_store import NotificationRow
from receiver.delivery.state import State
from receiver.messages.acklinks import AckToken, BadToken, verify

SILENCES = {"silence-1h": 3600.0, "silence-4h": 4 * 3600.0}

PAGE = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }}</title>
<style>
body{font:16px/1.5 -apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;padding:16px;
max-width:640px;color:#222}
h1{font-size:20px;margin:0 0 12px}
.alert{border-left:4px solid #e5533c;padding:4px 10px;margin:8px 0}
.resolved{border-color:#78c06e}.muted{color:#777;font-size:14px}table{border-collapse:collapse;
width:100%;font-size:14px}td,th{padding:4px 6px;border-bottom:1px solid #eee;text-align:left}
button{display:block;width:100%;font-size:17px;padding:12px;margin:10px 0;border:0;
border-radius:8px;background:#1677ff;color:#fff}button.second{background:#eef3ff;color:#1677ff}
.done{background:#f0f9eb;padding:10px;border-radius:8px}.error{background:#fdecea;padding:10px;
border-radius:8px}
</style></head><body>
{% if refused %}
<h1>{{ t.refused }}</h1><p class="muted">{{ t.refused_why }}</p>
{% else %}
<h1>{{ title }}</h1>
{% if result %}<p class="{{ 'error' if error else 'done' }}">{{ result }}</p>{% endif %}
{% for a in alerts %}
<div class="alert {{ a.status }}"><b>{{ a.labels.get('alertname', '') }}</b>
 {{ a.labels.get('severity', '') }} {{ a.labels.get('instance', '') }}<br>
 {{ a.annotations.get('summary') or a.annotations.get('description', '') }}</div>
{% endfor %}
{% if more %}<p class="muted">{{ t.more.format(n=more) }}</p>{% endif %}
<table><tr><th>{{ t.who }}</th><th>{{ t.sent }}</th><th>{{ t.read }}</th><th>{{ t.acked }}</th>
</tr>{% for p in people %}<tr><td>{{ p.name }}</td><td>{{ p.sent }}</td><td>{{ p.read }}</td>
<td>{{ p.acked }}</td></tr>{% endfor %}</table>
<p class="muted">{{ t.you }} {{ me }} · {{ received }}</p>
{% if not mine_acked %}
<form method="post"><button name="action" value="ack">{{ t.ack }}</button>
{% if silence %}
<button class="second" name="action" value="silence-1h">{{ t.ack_silence_1h }}</button>
<button class="second" name="action" value="silence-4h">{{ t.ack_silence_4h }}</button>{% endif %}
</form>
{% endif %}
{% endif %}
</body></html>"""

WORDS = {
    "refused": "链接无效或已过期",
    "refused_why": "This link is invalid or has expired. Open the newest message instead.",
    "who": "通知对象",
    "sent": "发送",
    "read": "已读",
    "acked": "认领",
    "you": "您是",
    "ack": "认领 Acknowledge",
    "ack_silence_1h": "认领并静默 1 小时",
    "ack_silence_4h": "认领并静默 4 小时",
    "more": "…还有 {n} 条告警",
    "done": "已认领 · {who}",
    "already": "您已认领 · {who}",
    "silenced": "已静默至 {until} (silence {id})",
    "silence_failed": "认领成功, 但静默失败: {error}",
}


def ack_blueprint(state: State) -> Blueprint:
    bp = Blueprint("ack", __name__)

    def refused() -> tuple[str, int, dict[str, str]]:
        return render_template_string(PAGE, refused=True, t=WORDS, title=""), 403, HEADERS

    def check(token: str) -> tuple[AckToken, NotificationRow] | None:
        key = state.settings.secret_key or ""
        try:
            t = verify(key, token, time.time())
        except BadToken:
            return None
        row = state.outbox.planned_notification(t.notification_id)
        return None if row is None else (t, row)

    def page(t: AckToken, row: NotificationRow, result: str = "", error: bool = False) -> str:
        n = PARSERS[row.source](row.body)
        tz = state.renderer.tz
        people = []
        mine_acked = False
        seen: set[str] = set()
        for r in state.outbox.reached_by(row.id):
            if r.userid in seen:
                continue
            seen.add(r.userid)
            mine_acked = mine_acked or (r.userid == t.userid and r.acked_at is not None)
            dept = r.userid.startswith("dept:")
            people.append({
                "name": r.userid if dept else name_of(state.directory, r.userid),
                "sent": {"sent": "✓", "dead": "✗"}.get(r.item_state or "", "…"),
                "read": _hm(r.read_at, tz),
                "acked": _hm(r.acked_at, tz),
            })  # fmt: skip
        shown = list(n.alerts[:20])
        silence = bool(state.settings.alertmanager_url) and row.source == "alertmanager"
        return render_template_string(
            PAGE, refused=False, t=WORDS, title=state.renderer.title(n), alerts=shown,
            more=len(n.alerts) - len(shown), people=people, me=name_of(state.directory, t.userid),
            received=_hm(row.received_at, tz, full=True), mine_acked=mine_acked and not result,
            silence=silence, result=result, error=error,
        )  # fmt: skip

    @bp.get("/ack/<token>")
    def show(token: str) -> tuple[str, int, dict[str, str]]:
        found = check(token)
        if found is None:
            return refused()
        return page(*found), 200, HEADERS

    @bp.post("/ack/<token>")
    def act(token: str) -> tuple[str, int, dict[str, str]]:
        found = check(token)
        if found is None:
            return refused()
        t, row = found
        action = request.form.get("action", "ack")
        silence_s = SILENCES.get(action)
        outcome = acknowledge(state, t.notification_id, t.userid, via="page", silence_s=silence_s)
        words = WORDS["done" if outcome.receivers else "already"].format(who=outcome.name)
        if outcome.silence_error:
            return page(t, row, WORDS["silence_failed"].format(error=outcome.silence_error),
                        error=True), 200, HEADERS  # fmt: skip
        if outcome.silence_id and silence_s:
            until = _hm(time.time() + silence_s, state.renderer.tz, full=True)
            words += " · " + WORDS["silenced"].format(until=until, id=outcome.silence_id)
        return page(t, row, words), 200, HEADERS

    return bp


# The token is in the URL: keep it out of caches and other sites' Referer headers.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Type": "text/html; charset=utf-8",
}


def _hm(ts: float | None, tz: object, full: bool = False) -> str:
    if ts is None:
        return ""
    at = datetime.fromtimestamp(ts, tz)  # type: ignore[arg-type]
    return f"{at:%Y-%m-%d %H:%M}" if full else f"{at:%H:%M}"
