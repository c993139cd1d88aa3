"""Console pages for chasing pages: the overview and the notifications (list, detail, act).

Retry and drop call the outbox's operator actions, as `outbox retry` and
`outbox drop` do: `requeue` / `replan` and `drop` / `drop_pending`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response

from receiver.delivery.state import State
from receiver.messages.render import msg_size
from receiver.web.console import data
from receiver.web.console.md import msg_html


def _ref(ref: str) -> tuple[str, int]:
    """`12` -> ("item", 12); `p3` -> ("pending", 3); anything else is a 404."""
    if ref[:1] == "p" and ref[1:].isdigit():
        return "pending", int(ref[1:])
    if ref.isdigit():
        return "item", int(ref)
    abort(404)


def add(bp: Blueprint, state: Callable[[], State]) -> None:
    @bp.get("/")
    def overview() -> str:
        now = datetime.now(UTC)
        view = data.overview(state(), now)
        return render_template("console/overview.html", o=view, ago=data.ago, now=now,
                               names=data.names(state(), [u for c in view.on_call
                                                          for u in c.userids]))  # fmt: skip

    @bp.get("/notifications")
    def notifications() -> str:
        want = request.args.get("state", "")
        if want not in ("", *data.FILTER_STATES):
            want = ""
        receiver = request.args.get("receiver", "").strip()
        person = request.args.get("person", "").strip()
        found = data.rows(state(), want or None, receiver, person)
        return render_template("console/notifications.html", rows=found, want=want,
                               receiver=receiver, person=person, states=data.FILTER_STATES,
                               receivers=sorted(state().table.receivers))  # fmt: skip

    @bp.get("/notifications/<ref>")
    def notification(ref: str) -> str:
        kind, n = _ref(ref)
        s = state()
        if kind == "pending":
            p = next((p for p in s.outbox.pending() if p.id == n), None)
            if p is None:
                abort(404)
            try:
                body = json.dumps(json.loads(p.body), ensure_ascii=False, indent=2)
            except ValueError:
                body = p.body.decode("utf-8", "replace")
            return render_template("console/pending.html", p=p, body=body, ago=data.ago)
        item = s.outbox.get(n)
        if item is None:
            abort(404)
        return render_template(
            "console/notification.html",
            item=item,
            alerts=data.alerts_of(s, item.notification_id),
            held=item.state == "queued" and bool(item.hold_reason),
            history=s.outbox.history(n),
            people=data.recipients(s, item),
            html=msg_html(item.msg),
            size=msg_size(item.msg),
            budget=s.settings.max_message_bytes,
            msg_json=json.dumps(item.msg, ensure_ascii=False, indent=2),
        )

    @bp.post("/notifications/<ref>/retry")
    def retry(ref: str) -> Response:
        kind, n = _ref(ref)
        box = state().outbox
        done = box.replan(n) if kind == "pending" else box.requeue(n) == 1
        said = "retried" if done else "not-retried"
        return redirect(url_for("console.notification", ref=ref, said=said), 303)

    @bp.post("/notifications/<ref>/drop")
    def drop(ref: str) -> Response:
        kind, n = _ref(ref)
        box = state().outbox
        gone = box.drop_pending(n) if kind == "pending" else box.drop(n)
        if gone is None:
            return redirect(url_for("console.notification", ref=ref, said="not-dropped"), 303)
        return redirect(url_for("console.notifications", dropped=ref), 303)
