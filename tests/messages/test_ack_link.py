"""The acknowledge link in a message: a markdown link, a text line, an action_card button;
never cut, whatever the budget does to the body."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from receiver.ingest.alertmanager import parse_alertmanager
from receiver.messages.render import Renderer
from tests.conftest import FIXTURES, ROOT

NOW = datetime(2026, 11, 28, 3, 20, tzinfo=UTC)
URL = "https://rx.example/ack/1.dTE.1800000000.abcdefghijklmnopqrstuv"


def render(msgtype: str, fixture: str = "firing-1.json", **kw: object) -> dict[str, object]:
    n = parse_alertmanager((FIXTURES / "alertmanager" / fixture).read_bytes())
    r = Renderer(str(ROOT / "templates"))
    return r.render(n, msgtype=msgtype, now=NOW, ack_url=URL, **kw).msg  # type: ignore[arg-type]


def test_markdown_carries_a_link() -> None:
    msg = render("markdown")
    assert f"[认领]({URL})" in msg["markdown"]["text"]  # type: ignore[index]


def test_text_carries_the_url() -> None:
    assert f"认领: {URL}" in render("text")["text"]["content"]  # type: ignore[index]


def test_action_card_has_it_as_the_first_button() -> None:
    card = render("action_card")["action_card"]
    assert card["btn_json_list"][0] == {"title": "认领", "action_url": URL}  # type: ignore[index]


@pytest.mark.parametrize("msgtype", ["markdown", "text"])
def test_a_group_too_big_for_the_budget_keeps_the_link(msgtype: str) -> None:
    msg = render(msgtype, "many-55.json")
    assert URL in str(msg)


def test_a_note_comes_first() -> None:
    msg = render("markdown", note="未确认 5m · 张三")
    assert msg["markdown"]["text"].startswith("**未确认 5m · 张三**")  # type: ignore[index]
