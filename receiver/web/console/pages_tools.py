"""Console pages for people who edit routing: route tester, template preview, on-call
calendar, routing. Each calls the function its CLI command calls:
`routing.explain.explain` (routes test), `pipeline.preview` with the running Renderer
(render), `Schedule.shift_at` (oncall), `routing.explain.diff` (routes diff).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template, request

from receiver.delivery.pipeline import preview as plan_preview
from receiver.delivery.planner import PARSERS
from receiver.delivery.state import LAST_GOOD_FILE, State
from receiver.errors import ConfigError, PayloadError
from receiver.ingest.alertmanager import parse_alertmanager
from receiver.ingest.grafana import parse_grafana
from receiver.messages.render import MSGTYPES, msg_size
from receiver.messages.robot import ROBOT_MAX_BYTES
from receiver.routing import load_routing
from receiver.routing.explain import RouteAnswer, diff, explain, parse_labels
from receiver.web.console import data
from receiver.web.console.md import msg_html

SAMPLES = Path(__file__).resolve().parent / "samples"


def samples() -> dict[str, Path]:
    """Bundled example payloads: name -> file (`alertmanager-…` or `grafana-…`)."""
    return {p.stem: p for p in sorted(SAMPLES.glob("*.json"))}


def parse_at(text: str, tz: str) -> datetime:
    """ISO 8601; a time without an offset is read in RECEIVER_TIMEZONE. Empty: now."""
    if not text.strip():
        return datetime.now(UTC)
    t = datetime.fromisoformat(text.strip())
    return t if t.tzinfo else t.replace(tzinfo=ZoneInfo(tz))


def add(bp: Blueprint, state: Callable[[], State]) -> None:
    @bp.get("/routes/test")
    def route_tester() -> str:
        s = state()
        text = request.args.get("labels", "")
        at = request.args.get("at", "")
        answer: RouteAnswer | None = None
        error = ""
        if text.strip():
            try:
                labels = parse_labels(x.strip() for x in text.splitlines() if x.strip())
                answer = explain(s.table, labels, parse_at(at, s.settings.timezone))
            except ValueError as e:
                error = str(e)
        people = data.names(s, answer.userids) if answer else {}
        return render_template("console/route_test.html", labels=text, at=at, answer=answer,
                               error=error, people=people)  # fmt: skip

    @bp.route("/preview", methods=["GET", "POST"])
    def preview() -> str:
        s = state()
        f = request.form
        templates = sorted(s.renderer.env.list_templates(extensions=["j2"]))
        shown: list[dict[str, object]] = []
        error = ""
        if request.method == "POST":
            try:
                shown = _preview(s, f.get("receiver", ""), f.get("template", ""),
                                 f.get("msgtype", ""), f.get("payload", ""),
                                 f.get("sample", ""), f.get("source", "alertmanager"))  # fmt: skip
            except (PayloadError, KeyError, OSError) as e:
                error = str(e).strip("'\"")
        return render_template("console/preview.html", form=f, shown=shown, error=error,
                               receivers=sorted(s.table.receivers), templates=templates,
                               msgtypes=MSGTYPES, samples=list(samples()),
                               budget=s.settings.max_message_bytes)  # fmt: skip

    @bp.get("/oncall")
    def oncall() -> str:
        s = state()
        now = datetime.now(UTC)
        table = s.table
        days = {name: data.calendar(table, name, now) for name in sorted(table.schedules)}
        tzs = {name: str(table.schedules[name].tz) for name in days}
        return render_template("console/oncall.html", days=days, tzs=tzs)

    @bp.get("/routing")
    def routing() -> str:
        s = state()
        running, source = _running_text(s)
        on_disk = _read(s.settings.routing)
        problems: list[str] = []
        changes = None
        total = 0
        same = on_disk is not None and running is not None and _sha(on_disk) == _sha(running)
        if not same:
            try:
                disk_table = load_routing(s.settings.routing, s.directory)
                alerts = _recent_alerts(s) + _sample_alerts()
                changes, total = diff(s.table, disk_table, alerts, datetime.now(UTC))
            except ConfigError as e:
                problems = [str(p) for p in e.problems]
        return render_template("console/routing.html", path=s.settings.routing,
                               loaded_at=s.loaded_at, reload_error=s.reload_error,
                               running=running, source=source, same=same,
                               problems=problems, changes=changes, total=total)  # fmt: skip


def _preview(s: State, receiver: str, template: str, msgtype: str, payload: str, sample: str,
             source: str) -> list[dict[str, object]]:  # fmt: skip
    if not payload.strip() and sample:
        path = samples().get(sample)
        if path is None:
            raise KeyError(f"no sample {sample!r}")
        payload = path.read_text()
        source = "grafana" if sample.startswith("grafana") else "alertmanager"
    if not payload.strip():
        raise KeyError("paste a payload or pick a sample")
    parse = parse_grafana if source == "grafana" else parse_alertmanager
    n = parse(payload.encode())
    entries = plan_preview(s.table, s.renderer, n, now=datetime.now(UTC),
                           receiver=receiver or None, template=template or None,
                           msgtype=msgtype or None)  # fmt: skip
    return [
        {
            "receiver": e.receiver,
            "userids": e.userids,
            "departments": e.departments,
            "robot": e.robot,
            "budget": ROBOT_MAX_BYTES if e.robot else s.settings.max_message_bytes,
            "bytes": msg_size(e.msg),
            "html": msg_html(e.msg),
            "json": json.dumps(e.msg, ensure_ascii=False, indent=2),
        }  # fmt: skip
        for e in entries
    ]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _running_text(s: State) -> tuple[str | None, str]:
    """The text of the running table: the last good copy State keeps, else the file."""
    last_good = os.path.join(s.settings.data_dir, LAST_GOOD_FILE)
    text = _read(last_good)
    if text is not None:
        return text, last_good
    return _read(s.settings.routing), s.settings.routing


RECENT_WEBHOOKS = 200


def _recent_alerts(s: State) -> list[tuple[str, dict[str, str]]]:
    """The alerts of the newest webhooks still kept (RECEIVER_RETENTION), each label set once."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    out = []
    for p in s.outbox.recent_notifications(RECENT_WEBHOOKS):
        try:
            n = PARSERS[p.source](p.body)
        except (PayloadError, KeyError):
            continue
        for a in n.alerts:
            key = tuple(sorted(a.labels.items()))
            if key not in seen:
                seen.add(key)
                out.append((f"received {data.ago(time.time() - p.received_at)} ago", a.labels))
    return out


def _sample_alerts() -> list[tuple[str, dict[str, str]]]:
    """The label sets `routes diff` is run on: the bundled Alertmanager samples."""
    out = []
    for name, path in samples().items():
        if name.startswith("alertmanager"):
            n = parse_alertmanager(path.read_bytes())
            out += [(name, a.labels) for a in n.alerts]
    return out
