"""Hostile URLs from payloads never become links; the "N more" link is encoded properly."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any
from urllib.parse import quote, urlunsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.messages import links
from receiver.messages.filters import mdlink, mdlinks, mdurl
from receiver.messages.links import more_url, silence_url, web_url
from receiver.messages.render import Renderer
from receiver.model import Notification
from tests.render_support import NOW, TEMPLATES, am, grafana

HOSTILE = [
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    "  javascript:alert(1)",
    "java\tscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "dingtalk://dingtalkclient/page/link?url=x",
    "//evil.example.com/x",
    "/graph?g0.expr=up",
    "http:/no-host",
    "http://[::1",
]

# A markdown link or image target: `](target)`.
TARGET = re.compile(r"\]\(([^)]*)\)")


def targets(text: str) -> list[str]:
    return TARGET.findall(text)


def urls_in(msg: dict[str, Any]) -> list[str]:
    """Every link the message carries: markdown targets and action_card buttons."""
    body = msg.get("markdown", {}).get("text", "")
    card = msg.get("action_card", {})
    found = targets(body) + targets(card.get("markdown", ""))
    found += [b["action_url"] for b in card.get("btn_json_list", [])]
    return found + ([card["single_url"]] if "single_url" in card else [])


@pytest.mark.parametrize("url", HOSTILE)
def test_only_http_urls_are_web_urls(url: str) -> None:
    assert web_url(url) == ""
    assert mdurl(url) == ""
    assert "](" not in mdlink(url, "source")


def test_http_urls_are_kept() -> None:
    assert web_url(" https://grafana.example.com/d/x?orgId=1 ") == (
        "https://grafana.example.com/d/x?orgId=1"
    )
    assert mdlink("HTTP://x.example/a b(1)", "src") == "[src](HTTP://x.example/a%20b%281%29)"


def test_mdlinks_is_a_row_of_mdlinks_of_the_pairs_with_a_url() -> None:
    pairs = [("源", "https://a.example/x y"), ("静默", ""), ("面板", "javascript:alert(1)"),
             ("看板", None), ("图", "https://b.example/")]  # fmt: skip
    assert mdlinks(pairs) == " · ".join(
        mdlink(url, name) for name, url in pairs if url
    )  # the default template's loop, in one call
    assert (
        mdlinks(pairs)
        == "[源](https://a.example/x%20y) · 面板: javascript:alert(1) · [图](https://b.example/)"
    )
    assert mdlinks(pairs[:2], length=5) == "[源](https://a.example/x%20y)"
    assert mdlinks([("面板", "javascript:alert(1)")], length=8) == "面板: javascr…"
    assert mdlinks([]) == "" and mdlinks([("a", "")]) == ""


def hostile_am(url: str) -> Notification:
    n = am("am-firing-4")
    alerts = tuple(dataclasses.replace(a, generator_url=url) for a in n.alerts[:2])
    return dataclasses.replace(n, alerts=alerts, external_url=url, truncated_alerts=2)


def hostile_grafana(url: str) -> Notification:
    n = grafana("grafana-firing")
    bad = dict(generator_url=url, silence_url=url, dashboard_url=url, panel_url=url)
    alerts = tuple(dataclasses.replace(a, image_url=url, **bad) for a in n.alerts)
    return dataclasses.replace(n, alerts=alerts, external_url=url, truncated_alerts=2)


@pytest.mark.parametrize("msgtype", ["markdown", "action_card", "text"])
@pytest.mark.parametrize("make", [hostile_am, hostile_grafana], ids=["alertmanager", "grafana"])
@pytest.mark.parametrize("url", HOSTILE[:3] + HOSTILE[5:7])
def test_hostile_payload_urls_never_become_links(url: str, make: Any, msgtype: str) -> None:
    msg = Renderer(TEMPLATES).render(make(url), msgtype=msgtype, now=NOW).msg
    assert all(u.lower().startswith(("http://", "https://")) for u in urls_in(msg)), msg
    assert all("script" not in u.lower() and "data:" not in u for u in urls_in(msg)), msg
    # The URL is still there for a person to read, as text.
    text = json.dumps(msg, ensure_ascii=False)
    assert url.strip()[:15] in text


def test_action_card_shows_a_hostile_url_as_text_not_a_button() -> None:
    """No http(s) URL at all: no button, so the card goes as markdown (as any card
    without a button does), and the body shows each URL as text."""
    n = hostile_grafana("javascript:alert(1)")
    msg = Renderer(TEMPLATES).render(n, msgtype="action_card", now=NOW).msg
    assert msg["msgtype"] == "markdown"
    text = msg["markdown"]["text"]
    assert targets(text) == []
    for word in ("来源", "静默", "仪表盘", "面板"):
        assert f"{word}: javascript:alert(1)" in text, word


def test_a_hostile_url_beside_good_ones_leaves_the_good_ones_linked() -> None:
    n = am("am-firing-4")
    first = dataclasses.replace(n.alerts[0], generator_url="javascript:alert(1)")
    n = dataclasses.replace(n, alerts=(first, n.alerts[1]))
    msg = Renderer(TEMPLATES).render(n, msgtype="action_card", now=NOW).msg
    buttons = msg["action_card"]["btn_json_list"]
    assert buttons[0]["action_url"] == n.alerts[1].generator_url  # the first http(s) one


EXTERNAL = "http://am.example.com/alert manager/?team=(db)&x=a b#old"


def test_the_more_link_encodes_external_url_and_its_query() -> None:
    n = dataclasses.replace(am("am-firing-4"), external_url=EXTERNAL)
    assert more_url(n) == (
        "http://am.example.com/alert%20manager/?team=%28db%29&x=a%20b"
        "#/alerts?filter=%7Balertname%3D%22HighLatency%22%7D"
    )
    assert silence_url(EXTERNAL, {"a": 'x")'}).endswith(
        "?team=%28db%29&x=a%20b#/silences/new?filter=%7Ba%3D%22x%5C%22%29%22%7D"
    )
    g = dataclasses.replace(
        grafana("grafana-firing"), external_url="https://g.example/ro ot?orgId=2"
    )
    assert more_url(g) == "https://g.example/ro%20ot/alerting/list?orgId=2"


def test_the_more_link_is_one_markdown_link() -> None:
    n = dataclasses.replace(am("am-firing-55"), external_url=EXTERNAL)
    text = Renderer(TEMPLATES).render(n, now=NOW).msg["markdown"]["text"]
    more = text[text.index("**…") :]
    assert targets(more) == [more_url(n)]
    assert " " not in more_url(n) and ")" not in more_url(n)


@pytest.mark.parametrize("url", ["javascript:alert(1)//", "data:,x"])
def test_a_hostile_external_url_gives_no_more_or_silence_link(url: str) -> None:
    n = dataclasses.replace(am("am-firing-55"), external_url=url)
    assert more_url(n) == "" and silence_url(url, {"a": "b"}) == ""
    msg = Renderer(TEMPLATES).render(n, now=NOW).msg
    assert all(u.startswith("http") for u in urls_in(msg))


# Any code point, lone surrogates (valid in a JSON payload) included.
any_text = st.text(st.characters(blacklist_categories=()), max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=any_text)
def test_quoting_a_character_at_a_time_is_urllibs_quote(text: str) -> None:
    assert links._q(text) == quote(text, safe="", errors="replace")


@settings(max_examples=300, deadline=None)
@given(
    base=st.one_of(
        st.sampled_from(["", "http://am:9093", "https://am.example/a b/?orgId=1#x", "ftp://x"]),
        st.builds(lambda t: "http://am.example/" + t, any_text),
    ),
    path=st.sampled_from(["", "/", "/alerting/list"]),
    fragment=any_text,
)
def test_a_url_under_a_base_is_urlunsplits(base: str, path: str, fragment: str) -> None:
    parts = links._under.__wrapped__(base, path)
    assert links.under(base, path, fragment) == (urlunsplit((*parts, fragment)) if parts else "")


def _matchers_at_once(labels: dict[str, str]) -> str:
    """Alertmanager's filter for `labels`, %-encoded as a whole (what `_matchers` keeps
    in parts)."""
    esc = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}
    pairs = (f'{k}="{"".join(esc.get(c, c) for c in v)}"' for k, v in sorted(labels.items()))
    return quote("{" + ",".join(pairs) + "}", safe="", errors="replace")


@settings(max_examples=300, deadline=None)
@given(
    labels=st.dictionaries(
        st.text("abc_", min_size=1, max_size=4),
        st.one_of(any_text, st.builds(lambda t: t * 10, any_text)),  # past the kept length too
        max_size=6,
    )
)
def test_the_filter_encoded_pair_by_pair_is_the_whole_filter_encoded(
    labels: dict[str, str],
) -> None:
    assert links._matchers(labels) == _matchers_at_once(labels)
    assert links._matchers(labels) == _matchers_at_once(labels)  # again, from the kept pairs
