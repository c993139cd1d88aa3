"""DingTalk markdown as HTML, for previews: the subset DingTalk renders, escaped first.

Everything is HTML-escaped before any rule applies, so a payload can add no tag
or attribute; links keep only http(s) URLs. Headings (#…######), **bold**,
*italic*, [links](url), ![images](url), > quotes, - and 1. lists, and line
breaks are what DingTalk's work notifications show; anything else stays text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from markupsafe import Markup, escape

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_ULIST = re.compile(r"^\s*[-*+]\s+(.*)$")
_OLIST = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_QUOTE = re.compile(r"^&gt;\s?(.*)$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")


def _safe_url(url: str) -> str:
    return url if re.match(r"^https?://", url, re.I) else ""


def _inline(text: str) -> str:
    """Inline rules on already-escaped text; backslash escapes are kept out of them."""
    stash: list[str] = []

    def keep(m: re.Match[str]) -> str:
        stash.append(m.group(1))
        return f"\x00{len(stash) - 1}\x00"

    text = _ESCAPED.sub(keep, text)

    def image(m: re.Match[str]) -> str:
        url = _safe_url(m.group(2))
        return f'<img alt="{m.group(1)}" src="{url}">' if url else m.group(0)

    def link(m: re.Match[str]) -> str:
        url = _safe_url(m.group(2))
        return f'<a href="{url}" rel="noreferrer noopener">{m.group(1)}</a>' if url else m.group(1)

    text = _IMAGE.sub(image, text)
    text = _LINK.sub(link, text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _ITALIC.sub(r"<em>\1</em>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: stash[int(m.group(1))], text)


def _list_item(line: str) -> tuple[str, str] | None:
    if m := _ULIST.match(line):
        return "ul", m.group(1)
    if m := _OLIST.match(line):
        return "ol", m.group(1)
    return None


def _blocks(lines: list[str]) -> Iterator[str]:
    para: list[str] = []
    lists: tuple[str, list[str]] | None = None

    def flush() -> Iterator[str]:
        nonlocal lists
        if para:
            yield "<p>" + "<br>".join(_inline(p) for p in para) + "</p>"
            para.clear()
        if lists:
            tag, items = lists
            yield f"<{tag}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + f"</{tag}>"
            lists = None

    for line in lines:
        if not line.strip():
            yield from flush()
            continue
        if m := _HEADING.match(line):
            yield from flush()
            n = len(m.group(1))
            yield f"<h{n}>{_inline(m.group(2))}</h{n}>"
        elif m := _QUOTE.match(line):
            yield from flush()
            yield f"<blockquote>{_inline(m.group(1))}</blockquote>"
        elif found := _list_item(line):
            tag, item = found
            if para or (lists and lists[0] != tag):
                yield from flush()
            if lists is None:
                lists = (tag, [])
            lists[1].append(item)
        else:
            if lists:
                yield from flush()
            para.append(line)
    yield from flush()


def to_html(text: str) -> Markup:
    """DingTalk markdown -> safe HTML."""
    escaped = str(escape(text))
    return Markup("\n".join(_blocks(escaped.splitlines())))


def msg_html(msg: dict[str, Any]) -> Markup:
    """A DingTalk `msg` as its reader sees it: markdown rendered, text kept as text."""
    kind = msg.get("msgtype")
    part = msg.get(str(kind)) or {}
    if kind == "markdown":
        return to_html(str(part.get("text", "")))
    if kind == "action_card":
        body = to_html(str(part.get("markdown", "")))
        buttons = part.get("btn_json_list") or []
        if part.get("single_title"):
            buttons = [{"title": part["single_title"], "action_url": part.get("single_url", "")}]
        links = "".join(
            f'<span class="btn">{escape(b.get("title", ""))}</span>'
            for b in buttons
            if isinstance(b, dict)
        )
        return Markup(f"{body}<p class=buttons>{links}</p>")
    if kind == "text":
        return Markup(f'<p class="plain">{escape(part.get("content", ""))}</p>')
    return Markup(f"<pre>{escape(str(msg))}</pre>")
