"""The byte budget holds for any text: CJK, emoji, markup, control characters, tiny budgets."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.ingest.alertmanager import parse_alertmanager
from receiver.messages.budget import VALUE_CAP, Parts, SizeHint, fit, msg_size, resent, shrink
from receiver.messages.render import Renderer, notification_id
from receiver.model import Alert, Notification
from tests.conftest import ROOT
from tests.render_support import renderer

RENDERER = renderer()
EN = renderer(language="en")
WHEN = datetime(2026, 11, 28, 3, 14, 15, tzinfo=UTC)

text = st.text(
    st.one_of(
        st.characters(),  # any code point but lone surrogates, control characters included
        st.sampled_from("告警磁盘已满🔥🚨👨‍👩‍👧*_#[]()<>`~|\\\n\"'"),
    ),
    max_size=400,
)
labels = st.dictionaries(st.sampled_from(["alertname", "severity", "instance", "job", "x"]), text)


@st.composite
def notifications(draw: st.DrawFn) -> Notification:
    alerts = tuple(
        Alert(
            status=draw(st.sampled_from(["firing", "resolved"])),
            labels=draw(labels),
            annotations=draw(st.dictionaries(st.sampled_from(["summary", "description"]), text)),
            starts_at=WHEN,
            ends_at=None,
            generator_url=draw(st.sampled_from(["", "http://prometheus:9090/graph?g0.expr=up"])),
            fingerprint=draw(st.from_regex(r"[0-9a-f]{16}", fullmatch=True)),
            dashboard_url=draw(st.sampled_from(["", "http://grafana:3000/d/x"])),
        )
        for _ in range(draw(st.integers(0, 20)))
    )
    firing = any(a.status == "firing" for a in alerts)
    return Notification(
        source=draw(st.sampled_from(["alertmanager", "grafana"])),
        receiver=draw(text),
        status="firing" if firing else "resolved",
        alerts=alerts,
        group_labels=draw(labels),
        common_labels=draw(labels),
        external_url=draw(st.sampled_from(["", "http://alertmanager:9093"])),
        truncated_alerts=draw(st.integers(0, 3)),
    )


@settings(max_examples=50, deadline=None)
@given(
    n=notifications(),
    budget=st.one_of(st.sampled_from([256, 300, 2048]), st.integers(256, 4096)),
    msgtype=st.sampled_from(["markdown", "text", "action_card"]),
    english=st.booleans(),
)
def test_never_over_budget_never_broken_never_dropped(
    n: Notification, budget: int, msgtype: str, english: bool
) -> None:
    now = datetime(2026, 11, 28, 3, 19, 15, 123456, tzinfo=UTC)
    m = (EN if english else RENDERER).render(n, msgtype=msgtype, now=now, max_bytes=budget)
    raw = json.dumps(m.msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert len(raw) == m.size <= budget
    assert json.loads(raw.decode("utf-8")) == m.msg  # valid UTF-8, valid JSON
    assert m.shown + m.hidden == len(n.alerts) + n.truncated_alerts
    part = m.msg[m.msg["msgtype"]]
    content = part.get("text") or part.get("content") or part.get("markdown")
    assert content.endswith(notification_id(n, now))  # the uniqueness line survives
    if m.msg["msgtype"] != "text":
        assert len(m.title) <= 64


@settings(max_examples=40, deadline=None)
@given(summary=text, budget=st.integers(256, 1200))
def test_a_single_alert_is_always_shown(summary: str, budget: int) -> None:
    alert = Alert("firing", {"alertname": "A"}, {"summary": summary * 30}, WHEN, None)
    n = Notification(source="alertmanager", receiver="r", status="firing", alerts=(alert,))
    m = RENDERER.render(replace(n), max_bytes=budget)
    assert m.size <= budget
    assert m.shown == 1 and m.hidden == 0


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 600), max_size=300),
    base=st.integers(0, 400),
    budget=st.integers(256, 4096),
    hint=st.none() | st.builds(SizeHint, st.floats(-1000, 5000), st.floats(-10, 1000)),
)
def test_fit_shows_the_most_alerts_then_the_longest_values(
    sizes: list[int], base: int, budget: int, hint: SizeHint | None
) -> None:
    """Alert i renders to sizes[i] bytes, or to `cap` when cut: fit finds the best k, cap.

    Whatever the hint (where the search starts), the result is the same."""

    def build(k: int, cap: int | None) -> Parts:
        shown = sum(s if cap is None else min(s, cap) for s in sizes[:k])
        return Parts("text", "", "x" * (base + shown), "", "")

    def fits(k: int, cap: int | None) -> bool:
        return build(k, cap).size() <= budget

    def most(cap: int | None) -> int:
        return max((k for k in range(1, len(sizes) + 1) if fits(k, cap)), default=0)

    parts, k = fit(build, len(sizes), budget, hint)
    expected: tuple[int, int | None]
    if not sizes or most(None):
        expected = (most(None), None)
    elif most(VALUE_CAP):
        expected = (most(VALUE_CAP), VALUE_CAP)
    else:  # one alert, its values cut as little as fits
        expected = (1, max((c for c in range(VALUE_CAP) if fits(1, c)), default=0))
    assert (k, parts) == (expected[0], build(*expected))


def test_a_hint_from_the_last_group_settles_a_group_too_big_in_two_renders() -> None:
    """Without a hint a too-big group takes three renders (all, a guess, its neighbour)."""
    calls: list[int] = []

    def build(k: int, cap: int | None) -> Parts:
        calls.append(k)
        return Parts("text", "", "x" * (300 + 250 * k), "", "")

    hint = SizeHint()
    first = fit(build, 10, 2048, hint)
    assert len(calls) == 3 and first[1] == 6
    calls.clear()
    assert fit(build, 10, 2048, hint) == first
    assert calls == [6, 7]
    calls.clear()
    assert fit(build, 4, 2048, hint)[1] == 4 and calls == [4]  # a small group: one render


@pytest.mark.parametrize(("base", "per"), [(260.0, 2.2e-308), (0.0, 2.2e-308), (0.0, 1e308)])
def test_a_hint_of_any_size_guesses_between_one_and_all(base: float, per: float) -> None:
    assert 1 <= SizeHint(base, per).guess(5, 256) <= 5  # as found by hypothesis: no overflow


def _text(msg: dict[str, Any]) -> str:
    kind = msg["msgtype"]
    return str({"markdown": lambda: msg["markdown"]["text"], "text": lambda: msg["text"]["content"],
                "action_card": lambda: msg["action_card"]["markdown"]}[kind]())  # fmt: skip


@pytest.mark.parametrize("msgtype", ["markdown", "text", "action_card"])
def test_shrink_cuts_a_rendered_message_and_keeps_its_last_line(msgtype: str) -> None:
    n = parse_alertmanager((ROOT / "tests/fixtures/alertmanager/firing-4.json").read_bytes())
    msg = Renderer(str(ROOT / "templates")).render(n, msgtype=msgtype).msg
    assert msg["msgtype"] == msgtype
    budget = msg_size(msg) * 3 // 4  # what delivery asks for after a "too long" refusal
    small = shrink(msg, budget)
    assert small is not None and small["msgtype"] == msgtype
    assert msg_size(small) <= budget
    last_line = _text(msg).rsplit("\n", 1)[1]
    assert last_line.startswith("###### ") or msgtype == "text"
    assert _text(small).endswith("\n" + last_line)
    assert len(_text(small)) > len(last_line) + 100  # the start of the body is still there
    assert _text(small).startswith(_text(msg)[:50])
    assert shrink(small, budget) is None  # it fits already


def test_shrink_cuts_a_message_whose_last_line_is_long() -> None:
    msg = {"msgtype": "text", "text": {"content": "start\n" + "x" * 3000}}  # no short stamp
    small = shrink(msg, 1000)
    assert small is not None and msg_size(small) <= 1000
    assert small["text"]["content"].startswith("start\nxxx")


def test_a_copy_sent_again_is_marked_on_its_uniqueness_line_once() -> None:
    md = {"msgtype": "markdown", "markdown": {"title": "t", "text": "x\n\n###### 12:00 · ab"}}
    card = {"msgtype": "action_card", "action_card": {"title": "t", "markdown": "x", "x": 1}}
    again = resent(md)
    assert again == {
        "msgtype": "markdown",
        "markdown": {"title": "t", "text": "x\n\n###### 12:00 · ab ↻"},
    }
    assert md["markdown"]["text"].endswith("ab")  # the stored message is not changed
    assert resent(again or {}) is None  # sent again once
    assert resent(card) == {
        "msgtype": "action_card", "action_card": {"title": "t", "markdown": "x ↻", "x": 1}
    }  # fmt: skip
    assert resent({"msgtype": "oa", "oa": {}}) is None
    oa = {"msgtype": "oa", "oa": {"head": {}, "body": {"title": "t", "content": "x · ab"}}}
    assert resent(oa) == {
        "msgtype": "oa", "oa": {"head": {}, "body": {"title": "t", "content": "x · ab ↻"}}
    }  # fmt: skip
