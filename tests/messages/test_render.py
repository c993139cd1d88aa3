"""What a rendered message shows, for each fixture and msgtype, within the budget."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from receiver.messages.filters import md
from receiver.messages.render import Renderer, msg_size, notification_id
from tests.render_support import NOW, am, body, grafana, renderer

PROM = (
    "http://prometheus.example.com:9090/graph?g0.expr=histogram_quantile%280.99%2C+rate%28"
    "http_request_duration_seconds_bucket%5B5m%5D%29%29+%3E+2&g0.tab=1"
)
AM_UI = "http://alertmanager.example.com:9093"


def test_one_alert_markdown_exact() -> None:
    m = renderer().render(am("am-firing-1"), now=NOW)
    silence = (
        f"{AM_UI}/#/silences/new?filter=%7Balertname%3D%22HighLatency%22%2Ccluster%3D%22prod-sh"
        "%22%2Cinstance%3D%22api-1%3A9100%22%2Cjob%3D%22api%22%2Cnamespace%3D%22payments%22"
        "%2Cseverity%3D%22critical%22%7D"
    )
    assert m.msg == {
        "msgtype": "markdown",
        "markdown": {
            "title": "[告警:1] HighLatency",
            "text": "### \\[告警:1\\] HighLatency\n\n"
            "**告警** HighLatency · critical\n\n"
            "API p99 latency above 2s on api-1\n\n"
            "instance=api-1:9100, job=api, cluster=prod-sh, namespace=payments\n\n"
            "开始 2026-11-28 11:14:15 · 已持续 4m 59s\n\n"
            f"[来源]({PROM}) · [静默]({silence})\n\n"
            "###### 2026-11-28 11:19:15 · bece9a78",
        },
    }
    assert (m.shown, m.hidden, m.fallback, m.template) == (1, 0, False, "default.md.j2")


def test_one_alert_text_exact() -> None:
    m = renderer().render(am("am-firing-1"), msgtype="text", now=NOW)
    assert m.msg == {
        "msgtype": "text",
        "text": {
            "content": "[告警:1] HighLatency\n\n"
            "[告警] HighLatency\n"
            "API p99 latency above 2s on api-1\n"
            "severity=critical, instance=api-1:9100, job=api, cluster=prod-sh, namespace=payments\n"
            "开始: 2026-11-28 11:14:15 (已持续 4m 59s)\n"
            f"来源: {PROM}\n\n"
            "2026-11-28 11:19:15 · bece9a78"
        },
    }


def test_one_alert_action_card_has_buttons() -> None:
    m = renderer().render(am("am-firing-1"), msgtype="action_card", now=NOW)
    card = m.msg["action_card"]
    assert m.msg["msgtype"] == "action_card"
    assert card["title"] == "[告警:1] HighLatency"
    assert card["btn_json_list"] == [
        {"title": "来源", "action_url": PROM},
        {
            "title": "静默",
            "action_url": f"{AM_UI}/#/silences/new?filter=%7Balertname%3D%22HighLatency%22%7D",
        },
    ]
    assert "[来源]" not in card["markdown"]  # the buttons carry the links
    assert card["markdown"].endswith("###### 2026-11-28 11:19:15 · bece9a78")


@pytest.mark.parametrize("msgtype", ["markdown", "text", "action_card"])
def test_four_alerts_all_shown(msgtype: str) -> None:
    m = renderer().render(am("am-firing-4"), msgtype=msgtype, now=NOW)
    text = body(m.msg)
    assert m.size <= 2048
    assert (m.shown, m.hidden) == (4, 0)
    assert [f"api-{i}:9100" in text for i in range(1, 5)] == [True] * 4
    assert "未显示" not in text
    assert m.title == "[告警:4] HighLatency"


def test_four_alerts_markdown_silences_the_group_once() -> None:
    text = body(renderer().render(am("am-firing-4"), now=NOW).msg)
    group = f"[静默整组]({AM_UI}/#/silences/new?filter=%7Balertname%3D%22HighLatency%22%7D)"
    assert text.count(group) == 1
    assert "[静默](" not in text  # no per-alert silence links in a group
    assert text.count(f"[来源]({PROM})") == 4


@pytest.mark.parametrize("msgtype", ["markdown", "text", "action_card"])
def test_55_alerts_show_what_fits_and_count_the_rest(msgtype: str) -> None:
    m = renderer().render(am("am-firing-55"), msgtype=msgtype, now=NOW)
    text = body(m.msg)
    assert m.size <= 2048
    assert m.shown >= 3
    assert m.shown + m.hidden == 55
    assert f"…还有 {m.hidden} 条告警未显示" in text
    assert f"{AM_UI}/#/alerts?filter=%7Balertname%3D%22HighLatency%22%7D" in text
    shown = re.findall(r"api-(\d+):9100", text)
    assert sorted(set(shown), key=int) == [str(i) for i in range(1, m.shown + 1)]
    assert text.endswith(notification_id(am("am-firing-55"), NOW))


def test_55_alerts_fill_the_budget() -> None:
    """Showing one more alert would not have fitted: the budget is used, not wasted."""
    r = renderer()
    n = am("am-firing-55")
    m = r.render(n, now=NOW)
    bigger = r.render(n, now=NOW, max_bytes=m.size + 200)
    assert bigger.shown in (m.shown, m.shown + 1)
    assert r.render(n, now=NOW, max_bytes=4096).shown > m.shown


def test_explicit_smaller_budget() -> None:
    r = renderer()
    n = am("am-firing-55")
    m = r.render(n, now=NOW, max_bytes=1000)
    assert m.size <= 1000
    assert m.shown < r.render(n, now=NOW).shown
    assert f"…还有 {m.hidden} 条告警未显示" in body(m.msg)


def test_budget_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 256"):
        renderer().render(am("am-firing-1"), now=NOW, max_bytes=100)
    with pytest.raises(ValueError, match="at least 256"):
        renderer(max_bytes=10)


@pytest.mark.parametrize("msgtype", ["markdown", "text", "action_card"])
def test_10kb_annotation_is_cut_on_a_character_boundary(msgtype: str) -> None:
    n = am("am-huge-annotation")
    description = n.alerts[0].annotations["description"]
    assert len(description.encode()) == 10240
    m = renderer().render(n, msgtype=msgtype, now=NOW)
    text = body(m.msg)
    assert m.size <= 2048
    assert (m.shown, m.hidden) == (1, 0)
    assert "2026-11-28T03:14:00Z ERROR payments.api: upstream timeout" in text
    assert "…" in text
    assert "api-1:9100" in text  # the labels survive the cut
    assert text.endswith(notification_id(n, NOW))


def test_huge_chinese_annotation_never_breaks_utf8() -> None:
    n = am("am-firing-1")
    big = replace(n.alerts[0], annotations={"summary": "磁盘已满🔥" * 3000})
    m = renderer().render(replace(n, alerts=(big,)), now=NOW, max_bytes=1200)
    raw = json.dumps(m.msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert len(raw) == m.size <= 1200
    assert raw.decode("utf-8")  # valid UTF-8 all the way through
    assert "磁盘已满🔥磁盘" in body(m.msg)


def test_markdown_hostile_labels_stay_inert() -> None:
    text = body(renderer().render(am("am-hostile"), now=NOW).msg)
    assert "**告警** 磁盘\\_空间\\*不足 · 严重🔥" in text
    assert "instance=db-\\[1\\]\\_\\*primary\\*#" in text
    assert "cluster=生产集群 ### injected heading" in text  # folded onto one line
    assert "\n###" not in text.replace("\n### \\[告警:1\\]", "").replace("\n######", "")
    assert "\\[点我\\](http://evil.example.com) \\*\\*bold\\*\\* \\_it\\_" in text
    assert "job=mysql \\<font color=red\\>x\\</font\\>" in text
    assert "<font" not in text.replace("\\<font", "")


def test_markdown_hostile_text_message_is_verbatim() -> None:
    text = body(renderer().render(am("am-hostile"), msgtype="text", now=NOW).msg)
    assert "磁盘使用率超过 95%，请立即处理 🚨 [点我](http://evil.example.com) **bold** _it_" in text
    assert "cluster=生产集群 ### injected heading" in text


def test_resolved() -> None:
    m = renderer().render(am("am-resolved"), now=NOW)
    text = body(m.msg)
    assert m.title == "[已恢复] HighLatency"
    assert text.count("**已恢复** HighLatency · critical") == 2
    assert text.count("恢复于 2026-11-28 11:18:00 · 持续 3m 44s") == 2
    assert "告警**" not in text


def test_mixed_shows_firing_first() -> None:
    n = am("am-mixed")
    assert [a.status for a in n.alerts] == ["resolved", "firing", "resolved", "firing"]
    m = renderer().render(n, now=NOW, max_bytes=4096)
    text = body(m.msg)
    assert m.title == "[告警:2] HighLatency"
    order = re.findall(
        r"\*\*(告警|已恢复)\*\* HighLatency[^\n]*\n\nAPI p99 latency above 2s on (api-\d)", text
    )
    assert order == [("告警", "api-2"), ("告警", "api-4"), ("已恢复", "api-1"), ("已恢复", "api-3")]


def test_mixed_over_budget_drops_resolved_first() -> None:
    m = renderer().render(am("am-mixed"), now=NOW, max_bytes=1200)
    text = body(m.msg)
    assert m.size <= 1200
    assert 0 < m.shown < 4
    assert "**告警** HighLatency" in text
    assert "api-2" in text
    assert "api-3" not in text  # the last resolved alert is the first to go


def test_grafana_values_and_links() -> None:
    m = renderer().render(grafana("grafana-firing"), now=NOW)
    text = body(m.msg)
    assert m.title == "[告警:2] HighCPU"
    assert "数值: A=96.2, B=1" in text
    assert "数值: A=97.2, B=1" in text
    g = "http://grafana.example.com:3000"
    assert f"[仪表盘]({g}/d/rYdddlPWk?orgId=1)" in text
    assert f"[面板]({g}/d/rYdddlPWk?orgId=1&viewPanel=2)" in text
    assert (
        f"[静默]({g}/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DHighCPU" in text
    )
    assert "instance=node-1:9100, cluster=prod-bj" in text
    assert m.size <= 2048


def test_grafana_action_card_buttons() -> None:
    m = renderer().render(grafana("grafana-firing"), msgtype="action_card", now=NOW)
    buttons = m.msg["action_card"]["btn_json_list"]
    assert [b["title"] for b in buttons] == ["来源", "静默", "仪表盘", "面板"]
    assert buttons[0]["action_url"].startswith("http://grafana.example.com:3000/alerting/grafana/")
    assert all(len(b["title"]) <= 20 for b in buttons)


def test_grafana_resolved_and_more_link() -> None:
    r = renderer()
    m = r.render(grafana("grafana-resolved"), now=NOW)
    assert m.title == "[已恢复] HighCPU"
    assert "恢复于 2026-11-28 11:18:00 · 持续 3m 44s" in body(m.msg)
    n = grafana("grafana-firing")
    small = r.render(n, now=NOW, max_bytes=700)
    assert "[查看全部](http://grafana.example.com:3000/alerting/list)" in body(small.msg)


def test_english() -> None:
    r = renderer(language="en")
    m = r.render(am("am-firing-55"), now=NOW)
    text = body(m.msg)
    assert m.title == "[FIRING:55] HighLatency"
    assert "**FIRING** HighLatency · critical" in text
    assert "Started 2026-11-28 11:14:15 · firing for 4m 59s" in text
    assert f"…{m.hidden} more alerts not shown** [view all]" in text
    assert r.render(am("am-resolved"), now=NOW).title == "[RESOLVED] HighLatency"


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="zh, en"):
        renderer(language="fr")


def test_timezone_setting() -> None:
    text = body(renderer(timezone="UTC").render(am("am-firing-1"), now=NOW).msg)
    assert "开始 2026-11-28 03:14:15" in text
    assert text.endswith("2026-11-28 03:19:15 · bece9a78")


def test_every_message_is_unique() -> None:
    r = renderer()
    n = am("am-firing-1")
    a = r.render(n, now=NOW)
    b = r.render(n, now=NOW.replace(second=16))
    assert a.msg != b.msg
    assert body(b.msg).endswith(
        "###### 2026-11-28 11:19:16 · " + notification_id(n, b_now := NOW.replace(second=16))
    )
    assert notification_id(n, b_now) != notification_id(n, NOW)
    assert r.render(n, now=NOW).msg == a.msg  # same notification, same moment: same message


def test_truncated_alerts_from_alertmanager_are_counted() -> None:
    n = replace(am("am-firing-1"), truncated_alerts=7)
    m = renderer().render(n, now=NOW)
    assert m.hidden == 7
    assert "**…还有 7 条告警未显示**" in body(m.msg)


def test_lone_surrogate_becomes_valid_utf8() -> None:
    n = am("am-firing-1")
    bad = replace(n.alerts[0], annotations={"summary": "bad \ud800 half"})
    m = renderer().render(replace(n, alerts=(bad,)), now=NOW)
    assert "bad ? half" in body(m.msg)
    assert msg_size(m.msg) == m.size


def test_lone_surrogate_in_labels_and_links() -> None:
    n = am("am-firing-1")
    bad = replace(n.alerts[0], labels={"alertname": "\ud800", "instance": "x"})
    n = replace(n, alerts=(bad,), group_labels={"alertname": "\ud800"}, common_labels={})
    for msgtype in ("markdown", "text", "action_card"):
        m = renderer().render(n, msgtype=msgtype, now=NOW)
        assert m.size <= 2048 and m.title == "[告警:1] ?"
        if msgtype != "text":  # the surrogate, as '?', inside the silence link
            assert "filter=%7Balertname%3D%22%3F%22" in json.dumps(m.msg)


def test_action_card_without_any_link_is_sent_as_markdown() -> None:
    n = am("am-firing-1")
    bare = replace(n.alerts[0], generator_url="")
    m = renderer().render(
        replace(n, alerts=(bare,), external_url=""), msgtype="action_card", now=NOW
    )
    assert m.msg["msgtype"] == "markdown"
    assert m.msg["markdown"]["title"] == "[告警:1] HighLatency"


def test_long_title_is_cut_to_64_characters() -> None:
    n = am("am-firing-1")
    name = "很长的告警名称" * 20
    n = replace(n, common_labels={"alertname": name}, group_labels={"alertname": name})
    m = renderer().render(n, msgtype="action_card", now=NOW)
    title = m.msg["action_card"]["title"]
    assert len(title) == 64
    assert title.startswith("[告警:1] 很长的告警名称") and title.endswith("…")


def test_unknown_msgtype_falls_back_to_markdown(caplog: pytest.LogCaptureFixture) -> None:
    m = renderer().render(am("am-firing-1"), msgtype="link", now=NOW)
    assert m.msg["msgtype"] == "markdown"
    assert "unknown_msgtype msgtype=link" in caplog.text


# -- renderer defects, each test failed before its fix ---------------------------------


def test_md_escapes_an_ordered_list_marker_with_a_visible_result() -> None:
    # CommonMark escapes only ASCII punctuation: "\1." shows its backslash and
    # "1)" starts a list just as "1." does. The marker's punctuation is escaped.
    assert md("1. Disk full") == "1\\. Disk full"
    assert md("12) Disk full") == "12\\) Disk full"
    assert md("3.") == "3\\."
    # Not a list marker (no blank after it): left as written, no stray backslash.
    assert md("10.0.0.1:9100") == "10.0.0.1:9100"
    assert md("2)x") == "2)x"


class _Hung(BaseException):
    """Not an Exception: the renderer's fallback must not be what stops the test."""


@contextmanager
def _at_most(seconds: float) -> Iterator[None]:
    def stop(signum: int, frame: object) -> None:
        raise _Hung(f"the render ran for more than {seconds}s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


RUNAWAY = {
    "nested loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "recursive loop": (
        "{% for i in range(100000) recursive %}{{ loop(range(100000)) if loop.depth == 1 }}"
        "{% endfor %}"
    ),
    "huge output": '{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}',
    "huge string": '{{ ("x" * 10 ** 8) | length }}',
}


@pytest.mark.parametrize("source", RUNAWAY.values(), ids=RUNAWAY.keys())
def test_a_runaway_template_is_stopped_and_falls_back(tmp_path: Path, source: str) -> None:
    (tmp_path / "runaway.md.j2").write_text(source, encoding="utf-8")
    r = Renderer(str(tmp_path))
    # Unstopped, each of these runs for hours; alone a stopped one takes about 2 s, so
    # a minute proves it was stopped without failing on a loaded machine.
    with _at_most(60):
        m = r.render(am("am-firing-1"), template="runaway.md.j2", now=NOW)
    assert m.fallback and m.size <= 2048
    assert "HighLatency" in body(m.msg)
