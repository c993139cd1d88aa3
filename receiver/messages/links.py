"""Links a message points to: the sender's silence form and its list of the group. Pure.

Only an absolute http(s) URL ever becomes a link (`web_url`): a `javascript:`,
`data:` or any other URL that a payload carries (generatorURL, Grafana's panel,
dashboard, silence and image URLs, externalURL) is shown as text, or not at all.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

from receiver.messages.tokens import sign
from receiver.model import Alert, Notification

WEB_SCHEMES = ("http", "https")
# C0 controls and DEL: a browser drops some of them while it reads a URL
# ("java\tscript:"), so a URL holding any is no link.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What stays as written in a path or query: the RFC 3986 reserved and unreserved
# characters, and % so that what was encoded stays encoded.
_SAFE = "/:@!$&'*+,;=%~-._?"


def web_url(url: str) -> str:
    """`url` (without surrounding blanks) if it is an absolute http(s) URL, else "".

    The answers for the last few thousand short URLs are kept: a template asks about
    the same generatorURL several times an alert, and urlsplit was a tenth of a render.
    """
    return _web_url(url) if len(url) <= _CACHED_URL_CHARS else _web_url.__wrapped__(url)


_CACHED_URL_CHARS = 2048


@functools.lru_cache(maxsize=4096)
def _web_url(url: str) -> str:
    text = url.strip()
    if _CONTROL.search(text):
        return ""
    try:
        parts = urlsplit(text)
    except ValueError:  # a bad IPv6 host, say
        return ""
    return text if parts.scheme.lower() in WEB_SCHEMES and parts.netloc else ""


def _matchers(labels: dict[str, str]) -> str:
    """`{a="1",b="2"}`, the labels as Alertmanager's filter, %-encoded (`_q`).

    Each `name="value"` is encoded once and kept (`_pair`): the alerts of a group share
    most of their labels, and encoding them again for every alert was most of a silence
    link's cost. `_q` encodes a character at a time, so the parts' sum is the whole's.
    """
    return "%7B" + "%2C".join([_pair(k, v) for k, v in sorted(labels.items())]) + "%7D"


def _pair(name: str, value: str) -> str:
    if len(name) + len(value) > _CACHED_PAIR_CHARS:  # not kept: a rare, long value
        return _q(_matcher(name, value))
    return _quoted_pair(name, value)


@functools.lru_cache(maxsize=2048)
def _quoted_pair(name: str, value: str) -> str:
    return _q(_matcher(name, value))


def _matcher(name: str, value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{value}"'


_CACHED_PAIR_CHARS = 256


class _Quoted(dict[int, str]):
    """`str.translate`'s table for `_q`: each character as `quote(c, safe="")` gives it,
    made the first time it is seen (UTF-8 is per character, so the text's is the sum)."""

    def __missing__(self, c: int) -> str:
        found = self[c] = quote(chr(c), safe="", errors="replace")
        return found


_QUOTED = _Quoted()


def _q(text: str) -> str:
    """%-encode all of it; a lone surrogate (valid in a JSON payload) becomes '?'.

    The same as `quote(text, safe="", errors="replace")`, a character at a time from a
    table: quote's loop over the bytes was a tenth of a 10-alert group's render."""
    if len(_QUOTED) > _QUOTED_MAX:  # a payload of many distinct characters: start over
        _QUOTED.clear()
    return text.translate(_QUOTED)


_QUOTED_MAX = 4096


def under(base: str, path: str = "", fragment: str = "") -> str:
    """`path` (and a `#fragment`) under the http(s) URL `base`, every part %-encoded.

    `http://am.example/a b?orgId=1` + `/alerting/list` is
    `http://am.example/a%20b/alerting/list?orgId=1`: base's query stays a query,
    its fragment is replaced. "" when `base` is not an http(s) URL.
    """
    if len(base) + len(path) > _CACHED_URL_CHARS:
        parts = _under.__wrapped__(base, path)
        return urlunsplit((*parts, fragment)) if parts else ""
    url = _under_url(base, path)  # urlunsplit appends a fragment as "#" + it, last
    return url + "#" + fragment if url and fragment else url


@functools.lru_cache(maxsize=256)
def _under_url(base: str, path: str) -> str:
    parts = _under(base, path)
    return urlunsplit((*parts, "")) if parts else ""


@functools.lru_cache(maxsize=256)  # one base (externalURL) for every alert of a sender
def _under(base: str, path: str) -> tuple[str, str, str, str] | tuple[()]:
    url = web_url(base)
    if not url:
        return ()
    p = urlsplit(url)
    full = p.path.rstrip("/") + path
    return (
        p.scheme,
        p.netloc,
        quote(full, safe=_SAFE, errors="replace"),
        quote(p.query, safe=_SAFE, errors="replace"),
    )


def silence_url(external_url: str, labels: dict[str, str]) -> str:
    """Alertmanager's "new silence" page, pre-filled with these labels."""
    return under(external_url, "/", f"/silences/new?filter={_matchers(labels)}")


def more_url(n: Notification) -> str:
    """Where the whole group can be seen (see docs/templates.md): the receiver's own page
    when it has one, else the sender's alert list."""
    if n.more_url:
        return n.more_url
    if n.source == "grafana":
        return under(n.external_url, "/alerting/list")
    return under(n.external_url, "/", f"/alerts?filter={_matchers(n.group_labels)}")


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
    return next((a.silence_url for a in alerts if web_url(a.silence_url)), "")


def buttons(
    n: Notification, alerts: Sequence[Alert], words: dict[str, str]
) -> tuple[tuple[str, str], ...]:
    """action_card buttons: source, silence, dashboard and panel, each when there is an
    http(s) link (the template shows any other URL as text)."""

    def first(get: Callable[[Alert], str]) -> str:
        return next((web_url(get(a)) for a in alerts if web_url(get(a))), "")

    found = [
        (words["source"], first(lambda a: a.generator_url)),
        (words["silence"], web_url(group_silence_url(n, alerts))),
        (words["dashboard"], first(lambda a: a.dashboard_url)),
        (words["panel"], first(lambda a: a.panel_url)),
    ]
    return tuple((t, u) for t, u in found if u)
