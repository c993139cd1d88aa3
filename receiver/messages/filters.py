"""Jinja filters for message templates, and the words each language uses. Pure.

Every filter is documented in docs/templates.md; a template author sees only these.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote

from jinja2 import pass_context
from jinja2.runtime import Context

from receiver.messages.links import web_url

ELLIPSIS = "…"
KEY_LABELS = ("severity", "instance", "job", "cluster", "namespace")

# Words the default templates and the renderer use, by RECEIVER_LANGUAGE.
WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "firing": "告警",
        "resolved": "已恢复",
        "started": "开始",
        "firing_for": "已持续",
        "resolved_at": "恢复于",
        "lasted": "持续",
        "values": "数值",
        "source": "来源",
        "silence": "静默",
        "silence_all": "静默整组",
        "dashboard": "仪表盘",
        "panel": "面板",
        "more": "…还有 {n} 条告警未显示",
        "view_all": "查看全部",
        "more_messages": "…还有 {n} 条消息合并未显示",
        "ack": "认领",
        "unacked": "待认领",
        "escalated": "未确认 {after} · {who}",
        "acked_by": "已认领 · {who}",
    },
    "en": {
        "firing": "FIRING",
        "resolved": "RESOLVED",
        "started": "Started",
        "firing_for": "firing for",
        "resolved_at": "Resolved",
        "lasted": "lasted",
        "values": "Values",
        "source": "Source",
        "silence": "Silence",
        "silence_all": "Silence the group",
        "dashboard": "Dashboard",
        "panel": "Panel",
        "more": "…{n} more alerts not shown",
        "view_all": "view all",
        "more_messages": "…{n} more messages merged and not shown",
        "ack": "Acknowledge",
        "unacked": "Unacknowledged",
        "escalated": "Unacknowledged {after} · {who}",
        "acked_by": "Acknowledged · {who}",
    },
}

# CommonMark escapes any ASCII punctuation with a backslash. These are the ones that
# start emphasis, code, links, HTML (DingTalk renders <font>) or tables anywhere in a
# line; the second set only matters at the start of one (headings, lists, quotes).
_MD_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~"})
_MD_LINE_START = re.compile(r"^(\s*)([-+=#>])")
# An ordered list marker: "\1." would show its backslash (digits are no escape).
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])(?=\s|$)")
_BREAK = re.compile(r"[\r\n\u2028\u2029]")
_NEWLINES = re.compile(r"\s*[\r\n\u2028\u2029]+\s*")


def oneline(value: Any) -> str:
    """Fold line breaks (and the blanks around them) into one space."""
    text = str(value)
    if _BREAK.search(text):  # most values have none: skip the slower substitution
        text = _NEWLINES.sub(" ", text)
    return text.strip()


def md(value: Any) -> str:
    """Make text inert in DingTalk markdown: one line, every markup character escaped.

    A label value with *, _, #, [ or a newline then shows as written and cannot
    start a heading, a list, a link or emphasis, or end the line it sits on.
    """
    if type(value) is str and len(value) <= MEMO_CHARS:
        return _md(value)  # the same value recurs: each alert's name, every fitting attempt
    return _md.__wrapped__(value)


# Filters of short text keep their last few thousand answers: a fit renders the same
# alerts two or three times, and many alerts share a name, a severity, a source URL.
MEMO_CHARS = 1024
MEMO_SIZE = 4096


@functools.lru_cache(maxsize=MEMO_SIZE)
def _md(value: Any) -> str:
    text = oneline(value).translate(_MD_ESCAPES)
    text = _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)
    return _MD_ORDERED.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def mdurl(value: Any) -> str:
    """A URL safe inside a markdown link target: spaces, ( ) < > and quotes %-encoded.

    Only an http(s) URL: anything else (`javascript:`, `data:`, a relative path) gives
    "", so that a URL from a payload can never be a link to run or open something else.
    """
    return quote(web_url(str(value)), safe=":/?#[]@!$&'*+,;=%~", errors="replace")


def mdlink(value: Any, name: str, length: int = 200) -> str:
    """`[name](url)` for an http(s) URL; any other URL as text, `name: url`, cut to
    `length` characters; "" for no URL."""
    short = type(value) is str and type(name) is str and len(value) + len(name) <= MEMO_CHARS
    if short and type(length) is int:
        return _mdlink(value, name, length)
    return _mdlink.__wrapped__(value, name, length)


@functools.lru_cache(maxsize=MEMO_SIZE)
def _mdlink(value: Any, name: str, length: int) -> str:
    url = str(value or "").strip()
    if not url:
        return ""
    if web_url(url):
        return f"[{md(name)}]({mdurl(url)})"
    return f"{md(name)}: {md(cut(url, length))}"


def mdlinks(pairs: Iterable[Any], length: int = 200) -> str:
    """`mdlink` of each (name, url) pair that has a URL, joined by " · ": a row of links
    in one filter call, where a loop with `loop.last` took about a tenth of a render.
    No separator of the template's own: then its text is at most a few times the
    pairs', as the sandbox expects of it (receiver.messages.sandbox)."""
    return " · ".join(mdlink(url, name, length) for name, url in pairs if url)


def cut(value: Any, length: int = 200, end: str = ELLIPSIS) -> str:
    """At most `length` characters; a cut one ends with `end`. Never splits a character."""
    text = str(value)
    if len(text) <= length:
        return text
    return text[: max(length - len(end), 0)] + end


def cut_bytes(value: Any, limit: int, end: str = ELLIPSIS) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary, ending with `end`."""
    text = str(value)
    if len(text.encode("utf-8")) <= limit:
        return text
    room = limit - len(end.encode("utf-8"))
    if room < 0:
        return ""
    head = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return head + end


def join_labels(
    labels: Mapping[str, Any],
    keys: Iterable[str] | None = None,
    sep: str = ", ",
    fmt: str = "{k}={v}",
    exclude: Iterable[str] = (),
) -> str:
    """Labels as `k=v` joined by `sep`; `keys` picks and orders them, `exclude` drops some."""
    skip = set(exclude)
    names = list(keys) if keys is not None else sorted(labels)
    if fmt == "{k}={v}":  # the usual one: the same text without parsing the format
        return sep.join(f"{k}={labels[k]}" for k in names if k in labels and k not in skip)
    return sep.join(fmt.format(k=k, v=labels[k]) for k in names if k in labels and k not in skip)


@functools.lru_cache(maxsize=256)  # the alerts of a group mostly started together
def format_duration(delta: timedelta) -> str:
    """A compact human duration: 45s, 5m 3s, 2h 5m, 3d 4h."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def make_localtime(tz: tzinfo) -> Any:
    @functools.lru_cache(maxsize=256)  # the alerts of a group mostly started together
    def at(value: datetime, fmt: str) -> str:
        return value.astimezone(tz).strftime(fmt)

    def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """The time in RECEIVER_TIMEZONE; "" for no time."""
        if not value:
            return ""
        if type(value) is datetime and type(fmt) is str and len(fmt) <= MEMO_CHARS:
            return at(value, fmt)
        return value.astimezone(tz).strftime(fmt)

    return localtime


@pass_context
def duration(ctx: Context, start: datetime | None, end: datetime | None = None) -> str:
    """How long from `start` to `end`, or to the notification time when `end` is none."""
    if start is None:
        return ""
    stop = end or ctx.get("now")
    if not isinstance(stop, datetime):
        return ""
    return format_duration(stop - start)


def filters(tz: tzinfo) -> dict[str, Any]:
    return {
        "localtime": make_localtime(tz),
        "duration": duration,
        "md": md,
        "mdurl": mdurl,
        "mdlink": mdlink,
        "mdlinks": mdlinks,
        "oneline": oneline,
        "cut": cut,
        "cut_bytes": cut_bytes,
        "join_labels": join_labels,
    }
