"""Render a Notification into a DingTalk `msg` object within the byte budget. Pure.

A template (templates/, run in Jinja's sandbox) renders the body; the renderer adds
the title, the "…N more" line, the uniqueness line and, for action_card, the
buttons, and fits it all into the budget (receiver.budget). A template that fails
falls back to the built-in one (receiver.builtin): the alert is always sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChainableUndefined, DictLoader, FileSystemLoader, TemplateSyntaxError, nodes
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import SandboxedEnvironment

from receiver.errors import ConfigProblem, not_utf8
from receiver.messages.budget import MIN_BUDGET, TITLE_CHARS, Parts, fit, hard_fit, msg_size
from receiver.messages.builtin import BUILTIN_TEMPLATES
from receiver.messages.filters import KEY_LABELS, WORDS, cut, filters, oneline
from receiver.messages.links import buttons, group_silence_url, more_url, silence_url
from receiver.model import Alert, Notification
from receiver.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES = {
    "markdown": "default.md.j2",
    "text": "default.text.j2",
    "action_card": "default.action_card.j2",
}
MSGTYPES = tuple(DEFAULT_TEMPLATES)
DEFAULT_TEMPLATE = DEFAULT_TEMPLATES["markdown"]

__all__ = ["Message", "Renderer", "context", "msg_size", "notification_id"]


# What `getattr` finds on a plain dict: its methods, nothing else.
_DICT_ATTRIBUTES = frozenset(dir(dict))

# What one render of a template may do: loop iterations plus calls, and characters
# of output or of one repeated string or list. The default templates use a few
# hundred steps and a few thousand characters; past these a template is runaway
# (a loop in a loop over range(100000)) and fails, so the built-in one is used.
MAX_TEMPLATE_STEPS = 1_000_000
MAX_TEMPLATE_CHARS = 1_000_000


class TemplateLimitError(Exception):
    """A template ran past MAX_TEMPLATE_STEPS or MAX_TEMPLATE_CHARS."""


class _Steps:
    def __init__(self) -> None:
        self.left = MAX_TEMPLATE_STEPS

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise TemplateLimitError(f"more than {MAX_TEMPLATE_STEPS} loop steps and calls")


# The steps left to the template being rendered; None (no limit) for the built-in.
_steps: ContextVar[_Steps | None] = ContextVar("template_steps", default=None)


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    steps = _steps.get()
    for item in items:
        if steps is not None:
            steps.take()
        yield item


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, with a faster `a.labels` on a plain dict.

    The sandbox tries the attribute first and the key only after catching the
    AttributeError; a template reads dict keys this way about 25 times per alert,
    and the exceptions were a third of its time. For a name that is no attribute
    of dict, looking the key up directly gives the same result.
    """

    intercepted_binops = frozenset({"*"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template, each `for` loop counting its steps (`_counted`)."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_counted", [], [], None, None, lineno=loop.lineno)
        return tree

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        steps = _steps.get()
        if steps is not None:
            steps.take()
            if isinstance(__obj, LoopContext) and args:  # a recursive loop's loop(items)
                args = (_counted(args[0]), *args[1:])
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _steps.get() is not None:
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_TEMPLATE_CHARS:
                        raise TemplateLimitError(f"a repeat longer than {MAX_TEMPLATE_CHARS}")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _capped(values: dict[str, str], cap: int | None) -> dict[str, str]:
    return values if cap is None else {k: cut(v, cap) for k, v in values.items()}


def _alert_ctx(a: Alert, n: Notification, cap: int | None) -> dict[str, Any]:
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

    `alerts` are the contexts (`_alert_ctx`) of the alerts shown; `cap` cuts every
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


def _clean(text: str) -> str:
    """Valid UTF-8 only: a lone surrogate from a JSON payload becomes '?'."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _line(e: BaseException, name: str) -> int:
    """The template line an error came from (0 when unknown)."""
    if isinstance(e, TemplateSyntaxError) and e.lineno:
        return e.lineno
    line = 0
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename and frame.filename.endswith(name) and frame.lineno:
            line = frame.lineno
    return line


@dataclass(frozen=True)
class Message:
    msg: dict[str, Any]
    title: str
    shown: int = 0  # alerts shown in the message
    hidden: int = 0  # alerts left out for size, plus Alertmanager's truncatedAlerts
    template: str = ""  # the template that rendered the body
    fallback: bool = False  # True when `template` failed and the built-in one was used

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
        self.env = self._env(FileSystemLoader(templates_dir))
        self.builtin = self._env(DictLoader(BUILTIN_TEMPLATES))

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

    def _env(self, loader: FileSystemLoader | DictLoader) -> SandboxedEnvironment:
        env = _Sandbox(
            loader=loader,
            undefined=ChainableUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(filters(self.tz))
        env.filters["_counted"] = _counted
        return env

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
    ) -> Message:
        """The DingTalk msg for `n`, at most `max_bytes` (default: the Renderer's) bytes."""
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
        stamp = self._stamp(msgtype, now, nid)

        extras = self._extras(n, now, title, nid)
        alert_ctxs: dict[int | None, list[dict[str, Any]]] = {}

        def build(k: int, cap: int | None) -> Parts:
            # Each alert's context is made once per cap, however many builds show it.
            done = alert_ctxs.setdefault(cap, [])
            done += (_alert_ctx(a, n, cap) for a in ordered[len(done) : k])
            hidden = len(ordered) - k + n.truncated_alerts
            ctx = context(n, done[:k], cap) | extras | {"hiddenAlerts": hidden}
            body = self._body(attempt, msgtype, ctx).strip()
            more, plain = self._more(n, msgtype, hidden)
            return Parts(msgtype, title, _clean(body), _clean(more), stamp, btns, _clean(plain))

        parts, shown = fit(build, len(ordered), budget)
        parts = hard_fit(parts, budget)
        return Message(
            msg=parts.msg(),
            title=parts.title,
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
            token = _steps.set(_Steps())
            try:
                return self._limited(self.env.get_template(attempt.name).generate(ctx))
            # A user's template can raise anything (1/0, a bad filter argument, the
            # sandbox's SecurityError); the alert must still go out, so catch it all.
            except Exception as e:
                attempt.failed = True
                log.warning(
                    "template_fallback template=%s line=%d error=%s: %s",
                    attempt.name,
                    _line(e, attempt.name),
                    type(e).__name__,
                    cut(oneline(e), 200),
                )
                if self.on_fallback is not None:
                    self.on_fallback(attempt.name)
            finally:
                _steps.reset(token)
        return self.builtin.get_template(msgtype).render(ctx)

    @staticmethod
    def _limited(chunks: Iterator[str]) -> str:
        """The output, or TemplateLimitError once it passes MAX_TEMPLATE_CHARS."""
        out, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_TEMPLATE_CHARS:
                raise TemplateLimitError(f"more than {MAX_TEMPLATE_CHARS} characters of output")
            out.append(chunk)
        return "".join(out)

    def _more(self, n: Notification, msgtype: str, hidden: int) -> tuple[str, str]:
        """The "…N more" line, with and without its link ("" when nothing is hidden)."""
        if hidden <= 0:
            return "", ""
        more = self.words["more"].format(n=hidden)
        url = more_url(n)
        if msgtype == "text":
            link = f" {self.words['view_all']}: {url}" if url else ""
            return f"\n\n{more}{link}", f"\n\n{more}"
        link = f" [{self.words['view_all']}]({url})" if url else ""
        return f"\n\n**{more}**{link}", f"\n\n**{more}**"

    def _stamp(self, msgtype: str, now: datetime, nid: str) -> str:
        """The uniqueness line: the notification time to the second and the short id."""
        stamp = f"{now.astimezone(self.tz):%Y-%m-%d %H:%M:%S} · {nid}"
        return f"\n\n{stamp}" if msgtype == "text" else f"\n\n###### {stamp}"
