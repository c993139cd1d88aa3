"""The group robot's copy: its shape per msgtype, its mentions, its budget, and the digest."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from receiver.messages.budget import msg_size
from receiver.messages.render import Renderer
from receiver.messages.robot import ROBOT_MAX_BYTES, convert, digest, parts, robot_copy
from receiver.model import Alert
from tests.render_support import NOW, TEMPLATES, am

PAGED = ("manager4220", "user0002")


def copy(kind: str, name: str = "am-firing-4", **kw: Any) -> dict[str, Any]:
    return robot_copy(Renderer(TEMPLATES), am(name), template=None, msgtype=kind,
                      mentions=kw.pop("mentions", PAGED), now=NOW, **kw)  # fmt: skip


def test_markdown_mentions_in_at_and_in_the_text() -> None:
    body = copy("markdown")
    assert body["msgtype"] == "markdown" and set(body) == {"msgtype", "markdown", "at"}
    assert body["at"] == {"atUserIds": list(PAGED), "isAtAll": False}
    assert body["markdown"]["text"].endswith("\n\n@manager4220 @user0002")
    assert body["markdown"]["title"].startswith("[告警:4]")


def test_text_mentions() -> None:
    body = copy("text")
    assert body["text"]["content"].endswith("\n@manager4220 @user0002")
    assert body["at"]["atUserIds"] == list(PAGED)


def test_action_card_uses_the_robot_api_keys() -> None:
    body = copy("action_card")
    card = body["actionCard"]
    assert body["msgtype"] == "actionCard" and "action_card" not in body
    assert card["text"].endswith("@manager4220 @user0002")
    assert ("singleURL" in card) or all(set(b) == {"title", "actionURL"} for b in card["btns"])


def test_no_one_paged_means_no_mention_line() -> None:
    body = copy("markdown", mentions=())
    assert body["at"]["atUserIds"] == [] and not body["markdown"]["text"].rstrip().endswith("@")


def test_the_robot_budget_is_20000_bytes_not_2048() -> None:
    work = Renderer(TEMPLATES).render(am("am-firing-55"), now=NOW)
    body = copy("markdown", "am-firing-55")
    assert work.hidden > 0  # 55 alerts do not fit a work notification's 2,048 bytes
    assert msg_size(work.msg) <= 2048 < msg_size(body) <= ROBOT_MAX_BYTES


def test_a_group_over_the_robot_budget_says_how_many_more() -> None:
    n = am("am-firing-55")
    big = tuple(replace(a, annotations={**a.annotations, "description": "磁盘" * 300})
                for a in n.alerts)  # fmt: skip
    body = robot_copy(Renderer(TEMPLATES), replace(n, alerts=big), template=None,
                      msgtype="markdown", mentions=PAGED, now=NOW)  # fmt: skip
    assert msg_size(body) <= ROBOT_MAX_BYTES
    assert "还有" in body["markdown"]["text"] and body["at"]["atUserIds"] == list(PAGED)


def test_many_mentions_still_fit() -> None:
    many = tuple(f"user{i:05d}" for i in range(600))
    body = copy("markdown", "am-firing-55", mentions=many)
    assert msg_size(body) <= ROBOT_MAX_BYTES
    assert body["at"]["atUserIds"] == list(many)


def bodies(n: int, kind: str = "markdown") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        msg = {"msgtype": "markdown", "markdown": {"title": f"[告警:1] A{i}", "text": f"alert {i}"}}
        if kind == "text":
            msg = {"msgtype": "text", "text": {"content": f"alert {i}"}}
        out.append(convert(msg, (f"u{i % 3}",)))
    return out


def test_a_digest_keeps_the_first_then_the_rest_in_order() -> None:
    d = digest(bodies(13))
    _, text = parts(d)
    assert d["markdown"]["title"] == "[告警:1] A0 (+12)"
    assert [text.index(f"alert {i}\n") for i in range(13)] == sorted(
        text.index(f"alert {i}\n") for i in range(13)
    )
    assert d["at"]["atUserIds"] == ["u0", "u1", "u2"]
    assert digest(bodies(1)) == bodies(1)[0]


def test_a_digest_too_big_says_how_many_more_and_still_mentions_everyone() -> None:
    big = [convert({"msgtype": "text", "text": {"content": f"{i} " + "字" * 3000}}, (f"u{i}",))
           for i in range(30)]  # fmt: skip
    d = digest(big, language="en")
    text = d["text"]["content"]
    assert msg_size(d) <= ROBOT_MAX_BYTES
    assert text.startswith("0 字")  # the first is never dropped
    shown = sum(1 for i in range(30) if f"\n{i} 字" in text or text.startswith(f"{i} 字"))
    assert f"…{30 - shown} more messages merged and not shown" in text
    assert d["at"]["atUserIds"] == [f"u{i}" for i in range(30)]
    assert "@u29" in text  # the mentions of those not shown are written too


def test_a_first_message_that_fills_the_body_is_cut_not_dropped() -> None:
    huge = convert({"msgtype": "text", "text": {"content": "A" + "x" * 19_900}}, ("u9",))
    assert msg_size(huge) <= ROBOT_MAX_BYTES
    d = digest([huge, *bodies(3, "text")])
    text = d["text"]["content"]
    assert msg_size(d) <= ROBOT_MAX_BYTES and text.startswith("Axxx")
    assert "…还有 3 条消息合并未显示" in text and "alert 0" not in text
    assert d["at"]["atUserIds"] == ["u9", "u0", "u1", "u2"] and "@u0 @u1 @u2" in text


@pytest.mark.parametrize("kind", ["markdown", "text", "action_card"])
def test_every_kind_round_trips_through_parts(kind: str) -> None:
    body = copy(kind)
    title, text = parts(body)
    assert title and "@user0002" in text


def test_an_alert_without_labels_still_renders() -> None:
    n = am("am-firing-1")
    n = replace(n, alerts=(replace(n.alerts[0], labels={}),), common_labels={})
    body = robot_copy(Renderer(TEMPLATES), n, template=None, msgtype="markdown",
                      mentions=PAGED, now=NOW)  # fmt: skip
    assert isinstance(n.alerts[0], Alert) and body["at"]["atUserIds"] == list(PAGED)
