"""Render a Notification into a DingTalk `msg` object within the byte budget. Pure.

A template (templates/, run in Jinja's sandbox) renders the body; the renderer adds
the title, the "…N more" line, the uniqueness line and, for action_card, the
buttons, and fits it all into the budget (receiver.messages.budget). A template that fails
falls back to the built-in one (receiver.messages.builtin): the alert is always sent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    ChainableUndefined,
    DictLoader,
    FileSystemLoader,
    Template,
    TemplateSyntaxError,
)
from jinja2.sandbox import SandboxedEnvironment

from receiver.errors import ConfigProblem, not_utf8
from receiver.messages.budget import (
    MIN_BUDGET,
    TITLE_CHARS,
    Parts,
    SizeHint,
    fit,
    hard_fit,
    msg_size,
)
from receiver.messages.builtin import BUILTIN_TEMPLATES
from receiver.messages.context import alert_context, context, notification_id
from receiver.messages.filters import KEY_LABELS, WORDS, cut, filters, mdurl, oneline
from receiver.messages.links import buttons, group_silence_url, more_url, web_url
from receiver.messages.oa import oa_extras
from receiver.messages.probing import Probed, plan_of, probed_render, read
from receiver.messages.sandbox import Sandbox, error_line, is_shipped, limited
from receiver.model import Notification
from receiver.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES = {
    "markdown": "default.md.j2",
    "text": "default.text.j2",
    "action_card": "default.action_card.j2",
    "oa": "default.text.j2",  # its content is plain text, under the head and the form
}
MSGTYPES = tuple(DEFAULT_TEMPLATES)
DEFAULT_TEMPLATE = DEFAULT_TEMPLATES["markdown"]

__all__ = ["Message", "Renderer", "context", "msg_size", "notification_id"]


def _clean(text: str) -> str:
    """Valid UTF-8 only: a lone surrogate from a JSON payload becomes '?'."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


@dataclass(frozen=True)
class Message:
    msg: dict[str, Any]
    title: str
    shown: int = 0  # alerts shown in the message
    hidden: int = 0  # alerts left out for size, plus Alertmanager's truncatedAlerts
    template: str = ""  # the template that rendered the body
    fallback: bool = False  # True when `template` failed and the built-in one was used
    text: str = ""  # `msg` as compact JSON (budget.compact), made to size it; "": not made

    @property
    def size(self) -> int:
        return msg_size(self.msg)


class _Attempt:
    """One render call's memory of whether the chosen template already failed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed = False


class Renderer:
    def __init__(
        self,
        templates_dir: str = "templates",
        *,
        timezone: str = "Asia/Shanghai",
        max_bytes: int = 2048,
        language: str = "zh",
        external_url: str | None = None,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        if language not in WORDS:
            raise ValueError(f"language must be one of {', '.join(WORDS)}, got {language!r}")
        if max_bytes < MIN_BUDGET:
            raise ValueError(f"max_bytes must be at least {MIN_BUDGET}, got {max_bytes}")
        self.tz = ZoneInfo(timezone)
        self.max_bytes = max_bytes
        self.language = language
        self.words = WORDS[language]
        self.external_url = (external_url or "").rstrip("/")
        self.on_fallback = on_fallback
        self.templates_dir = templates_dir
        loader = FileSystemLoader(templates_dir)
        self.env = self._env(loader)
        # The same folder's shipped templates (receiver.messages.shipped), and the
        # built-in ones: they render with no budget, so without the checks' wrappers.
        self.shipped_env = self._env(loader, checked=False)
        self.builtin = self._env(DictLoader(BUILTIN_TEMPLATES), checked=False)
        # Per (template, msgtype): how big its messages were, where the next fit starts.
        self._hints: dict[tuple[str, str], SizeHint] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, on_fallback: Callable[[str], None] | None = None
    ) -> Renderer:
        """The renderer `serve`, `render` and `check-config` all use, from the same settings."""
        return cls(
            settings.templates,
            timezone=settings.timezone,
            max_bytes=settings.max_message_bytes,
            language=settings.language,
            external_url=settings.external_url,
            on_fallback=on_fallback,
        )

    def check_templates(self) -> list[ConfigProblem]:
        """Compile every template in the folder; a syntax error becomes FILE:LINE."""
        problems = []
        for name in self.env.list_templates(extensions=["j2"]):
            try:
                self.env.get_template(name)
            except TemplateSyntaxError as e:
                problems.append(ConfigProblem(e.filename or name, e.lineno, e.message or str(e)))
            except UnicodeDecodeError as e:
                path = os.path.join(self.templates_dir, name)
                with open(path, "rb") as fh:
                    problems.append(not_utf8(path, fh.read(), e))
        return problems

    def _env(
        self, loader: FileSystemLoader | DictLoader, *, checked: bool = True
    ) -> SandboxedEnvironment:
        env = Sandbox(
            checked=checked,
            loader=loader,
            undefined=ChainableUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(filters(self.tz))
        env.tests["weburl"] = lambda value: bool(web_url(str(value or "")))
        if checked:
            env.guard_filters()
        return env

    def _load(self, name: str) -> Template:
        """The template `name` from the folder; a shipped one compiled without checks."""
        with limited():  # a compile folds constants: within the limits, as a render's
            template = self.env.get_template(name)
        if not is_shipped(template):
            return template
        unchecked = self.shipped_env.get_template(name)
        return unchecked if is_shipped(unchecked) else template  # changed in between

    def title(self, n: Notification) -> str:
        """[告警:3] HighLatency, [已恢复] HighLatency (or FIRING/RESOLVED in English)."""
        names = dict.fromkeys(a.labels.get("alertname", "") for a in n.alerts if a.labels)
        name = (
            n.common_labels.get("alertname")
            or n.group_labels.get("alertname")
            or ", ".join(x for x in names if x)
            or n.receiver
        )
        w = self.words
        head = f"[{w['firing']}:{len(n.firing)}]" if n.status == "firing" else f"[{w['resolved']}]"
        return cut(oneline(f"{head} {name}"), TITLE_CHARS)

    def render(
        self,
        n: Notification,
        *,
        template: str | None = None,
        msgtype: str = "markdown",
        now: datetime | None = None,
        max_bytes: int | None = None,
        ack_url: str | None = None,
        note: str = "",
    ) -> Message:
        """The DingTalk msg for `n`, at most `max_bytes` (default: the Renderer's) bytes.

        `ack_url`: the acknowledge link (a button in action_card, else a line kept with
        the uniqueness line, which is never cut). `note`: a first line, as an escalation's
        `未确认 5m · 张三`.
        """
        now = now or datetime.now(UTC)
        budget = self.max_bytes if max_bytes is None else max_bytes
        if budget < MIN_BUDGET:
            raise ValueError(f"max_bytes must be at least {MIN_BUDGET}, got {budget}")
        if msgtype not in MSGTYPES:
            log.warning("unknown_msgtype msgtype=%s; using markdown", msgtype)
            msgtype = "markdown"
        attempt = _Attempt(template or DEFAULT_TEMPLATES[msgtype])
        ordered = sorted(n.alerts, key=lambda a: a.status != "firing")  # firing first, stable
        nid = notification_id(n, now)
        title = _clean(self.title(n))
        btns = buttons(n, ordered, self.words) if msgtype == "action_card" else ()
        oa = oa_extras(n, self.words, ack_url) if msgtype == "oa" else None
        plain = msgtype in ("text", "oa")
        stamp = self._stamp(msgtype, now, nid)
        if ack_url and msgtype == "action_card":
            btns = ((self.words["ack"], ack_url), *btns)
        elif ack_url and oa is None:  # an oa message opens the acknowledge page when tapped
            ack = self.words["ack"]
            link = f"{ack}: {ack_url}" if msgtype == "text" else f"[{ack}]({ack_url})"
            stamp = f"\n\n{link}{stamp}"
        lead = ""
        if note:
            lead = f"{_clean(note)}\n\n" if plain else f"**{_clean(note)}**\n\n"

        extras = self._extras(n, now, title, nid)
        alert_ctxs: dict[int | None, list[dict[str, Any]]] = {}
        probed: dict[int | None, Probed | None] = {}

        def ctx_of(k: int, cap: int | None) -> dict[str, Any]:
            # Each alert's context is made once per cap, however many builds show it.
            done = alert_ctxs.setdefault(cap, [])
            done += (alert_context(a, n, cap) for a in ordered[len(done) : k])
            hidden = len(ordered) - k + n.truncated_alerts
            return context(n, done[:k], cap) | extras | {"hiddenAlerts": hidden}

        def body_of(k: int, cap: int | None) -> str:
            # One probed render of k + 1 alerts gives the body of k and of k + 1 (the
            # pair a fit compares), and of fewer; else a render of k, as always. Once
            # the template failed, every body is the built-in one's, as without probes.
            seen = None if attempt.failed else probed.get(cap)
            if seen is None or k > seen.upto:
                planned = None if attempt.failed else plan_of(self._load, attempt.name)
                if planned is not None:
                    upto = min(len(ordered), k + 1)
                    seen = probed[cap] = probed_render(*planned, ctx_of(upto, cap), upto)
            body = seen.derive(k) if seen is not None else None
            return body if body is not None else self._body(attempt, msgtype, ctx_of(k, cap))

        def build(k: int, cap: int | None) -> Parts:
            hidden = len(ordered) - k + n.truncated_alerts
            body = body_of(k, cap).strip()
            more, bare = self._more(n, msgtype, hidden)
            return Parts(
                msgtype, title, lead + _clean(body), _clean(more), stamp, btns, _clean(bare), oa
            )

        hint = self._hints.setdefault((attempt.name, msgtype), SizeHint())
        parts, shown = fit(build, len(ordered), budget, hint)
        parts = hard_fit(parts, budget)
        return Message(
            msg=parts.msg(),
            title=parts.title,
            text=parts.text(),
            shown=shown,
            hidden=len(ordered) - shown + n.truncated_alerts,
            template=attempt.name,
            fallback=attempt.failed,
        )

    def _extras(self, n: Notification, now: datetime, title: str, nid: str) -> dict[str, Any]:
        return {
            "silenceURL": group_silence_url(n, n.alerts),
            "title": title,
            "now": now,
            "lang": self.language,
            "t": self.words,
            "keyLabels": list(KEY_LABELS),
            "notificationID": nid,
            "moreURL": more_url(n),
            "receiverURL": self.external_url,
        }

    def _body(self, attempt: _Attempt, msgtype: str, ctx: dict[str, Any]) -> str:
        if not attempt.failed:
            try:
                template = self._load(attempt.name)
                with limited(template):
                    return read(template.generate(ctx))
            # A user's template can raise anything (1/0, a bad filter argument, the
            # sandbox's SecurityError); the alert must still go out, so catch it all.
            except Exception as e:
                attempt.failed = True
                log.warning("template_fallback template=%s line=%d error=%s: %s", attempt.name,
                            error_line(e, attempt.name), type(e).__name__,
                            cut(oneline(e), 200))  # fmt: skip
                if self.on_fallback is not None:
                    self.on_fallback(attempt.name)
        return self.builtin.get_template("text" if msgtype == "oa" else msgtype).render(ctx)

    def _more(self, n: Notification, msgtype: str, hidden: int) -> tuple[str, str]:
        """The "…N more" line, with and without its link ("" when nothing is hidden)."""
        if hidden <= 0:
            return "", ""
        more = self.words["more"].format(n=hidden)
        url = more_url(n)
        if msgtype in ("text", "oa"):
            link = f" {self.words['view_all']}: {url}" if url else ""
            return f"\n\n{more}{link}", f"\n\n{more}"
        link = f" [{self.words['view_all']}]({mdurl(url)})" if url else ""
        return f"\n\n**{more}**{link}", f"\n\n**{more}**"

    def _stamp(self, msgtype: str, now: datetime, nid: str) -> str:
        """The uniqueness line: the notification time to the second and the short id."""
        stamp = f"{now.astimezone(self.tz):%Y-%m-%d %H:%M:%S} · {nid}"
        return f"\n\n{stamp}" if msgtype in ("text", "oa") else f"\n\n###### {stamp}"
