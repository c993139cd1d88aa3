"""Templates: the sandbox, the fallback to the built-in, custom templates, every filter."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jinja2 import Environment

from receiver.messages.filters import (
    cut,
    cut_bytes,
    format_duration,
    join_labels,
    md,
    mdurl,
    oneline,
)
from receiver.messages.render import Renderer
from tests.render_support import NOW, TEMPLATES, am, body, grafana

INJECTIONS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ alerts.__class__.__base__.__subclasses__() }}",
    "{{ alerts[0].labels.__class__.__base__.__subclasses__() }}",
]


def custom(tmp_path: Path, name: str, text: str, **kwargs: object) -> tuple[Renderer, list[str]]:
    (tmp_path / name).write_text(text, encoding="utf-8")
    calls: list[str] = []
    return Renderer(str(tmp_path), on_fallback=calls.append, **kwargs), calls  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_template_injection_is_refused(
    tmp_path: Path, payload: str, caplog: pytest.LogCaptureFixture
) -> None:
    r, calls = custom(tmp_path, "evil.md.j2", "owned:\n" + payload + "\n")
    m = r.render(am("am-firing-1"), template="evil.md.j2", now=NOW)
    text = body(m.msg)
    assert calls == ["evil.md.j2"]
    assert m.fallback
    assert "owned" not in text and "uid=" not in text and "<class" not in text
    assert "SecurityError" in caplog.text and "template=evil.md.j2 line=2" in caplog.text
    assert "**告警** HighLatency" in text  # the built-in still sends the alert


def test_syntax_error_falls_back_with_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r, calls = custom(tmp_path, "broken.md.j2", "line one\nline two\n{% for a in alerts %}\n")
    m = r.render(am("am-firing-1"), template="broken.md.j2", now=NOW)
    assert calls == ["broken.md.j2"]
    assert "template_fallback template=broken.md.j2 line=3 error=TemplateSyntaxError" in caplog.text
    assert m.size <= 2048 and "API p99 latency above 2s on api-1" in body(m.msg)


def test_runtime_error_falls_back_with_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r, calls = custom(tmp_path, "div.md.j2", "a\nb\n{{ 1 // 0 }}\n")
    with caplog.at_level(logging.WARNING, logger="receiver.messages.render"):
        m = r.render(am("am-firing-4"), template="div.md.j2", now=NOW)
    assert calls == ["div.md.j2"]  # counted once per message, not once per fitting attempt
    assert "template=div.md.j2 line=3 error=ZeroDivisionError" in caplog.text
    assert m.fallback and m.shown == 4


def test_missing_template_and_path_escape_fall_back(tmp_path: Path) -> None:
    calls: list[str] = []
    r = Renderer(str(tmp_path), on_fallback=calls.append)
    for name in ("nope.md.j2", "../../etc/passwd"):
        m = r.render(am("am-firing-1"), template=name, now=NOW)
        assert m.fallback and "HighLatency" in body(m.msg) and "root:" not in body(m.msg)
    assert calls == ["nope.md.j2", "../../etc/passwd"]


@pytest.mark.parametrize("msgtype", ["markdown", "text", "action_card"])
def test_missing_templates_folder_still_sends(msgtype: str) -> None:
    r = Renderer("/nonexistent/templates")
    m = r.render(am("am-firing-55"), msgtype=msgtype, now=NOW)
    assert m.fallback and m.size <= 2048 and m.shown > 1
    assert f"…还有 {m.hidden} 条告警未显示" in body(m.msg)


@pytest.mark.parametrize("msgtype", ["markdown", "text", "action_card"])
@pytest.mark.parametrize(
    "fixture",
    ["am-firing-1", "am-firing-4", "am-firing-55", "am-huge-annotation", "am-hostile"]
    + ["am-resolved", "am-mixed"],
)
def test_default_templates_never_fall_back(fixture: str, msgtype: str) -> None:
    calls: list[str] = []
    m = Renderer(TEMPLATES, on_fallback=calls.append).render(am(fixture), msgtype=msgtype, now=NOW)
    assert calls == [] and not m.fallback
    assert m.size <= 2048


def test_context_shape(tmp_path: Path) -> None:
    tpl = (
        "{{ source }}|{{ status }}|{{ receiver }}|{{ alerts | length }}|{{ firing | length }}|"
        "{{ resolved | length }}|{{ groupLabels.alertname }}|{{ commonLabels.job }}|"
        "{{ externalURL }}|{{ truncatedAlerts }}|{{ alerts[0].fingerprint }}|"
        "{{ alerts[0].startsAt | localtime('%H:%M') }}|{{ alerts[0].endsAt }}|{{ lang }}|"
        "{{ notificationID }}|{{ hiddenAlerts }}|{{ now | localtime }}"
    )
    r, calls = custom(tmp_path, "ctx.md.j2", tpl)
    text = body(r.render(am("am-mixed"), template="ctx.md.j2", now=NOW).msg)
    assert calls == []
    assert text.startswith(
        "alertmanager|firing|dingtalk|4|2|2|HighLatency|api|http://alertmanager.example.com:9093|"
        "0|a1b2c3d4e5f60002|11:14|None|zh|"
    )
    assert "|0|2026-11-28 11:19:15" in text


def test_dict_keys_read_as_attributes_but_methods_stay_methods(tmp_path: Path) -> None:
    tpl = (
        "{% for a in alerts %}{{ a.labels.alertname }}|{{ a.labels.nope }}|"
        "{{ a.labels.nope.deeper }}|{{ a.labels.items() | list | length }}|"
        "{{ a.values is callable }}|{{ a['values'] }}|{{ t.firing }}{% endfor %}"
    )
    r, calls = custom(tmp_path, "d.md.j2", tpl)
    text = body(r.render(am("am-firing-1"), template="d.md.j2", now=NOW).msg)
    assert calls == []
    assert text.startswith("HighLatency|||6|True|{}|告警\n")


def test_grafana_context(tmp_path: Path) -> None:
    tpl = (
        "{% for a in alerts %}{{ a['values'].A }} {{ a.valueString | cut(20) }} "
        "{{ a.dashboardURL }} {{ a.panelURL }}\n{% endfor %}"
    )
    r, calls = custom(tmp_path, "g.md.j2", tpl)
    text = body(r.render(grafana("grafana-firing"), template="g.md.j2", now=NOW).msg)
    assert calls == []
    assert "96.2 [ var='A' labels={i… http://grafana.example.com:3000/d/rYdddlPWk?orgId=1 " in text


def test_the_documented_example_template(tmp_path: Path) -> None:
    doc = (Path(TEMPLATES).parent / "docs" / "templates.md").read_text(encoding="utf-8")
    example = re.search(r"```jinja\n(.*?)```", doc, re.S)
    assert example is not None
    r, calls = custom(tmp_path, "oncall.md.j2", example.group(1))
    m = r.render(am("am-mixed"), template="oncall.md.j2", now=NOW)
    assert calls == []
    expected = re.search(r"renders:\n\n```text\n(.*?)```", doc, re.S)
    assert expected is not None
    assert body(m.msg) == expected.group(1).rstrip("\n")


# The filters, one by one.


def test_md() -> None:
    assert md("a*b_c`d~e|f") == "a\\*b\\_c\\`d\\~e\\|f"
    assert md("[x](http://e.com)") == "\\[x\\](http://e.com)"
    assert md("<font color=red>") == "\\<font color=red\\>"
    assert md("# h\n- item\r\n> q") == "\\# h - item \\> q"
    assert md("- x") == "\\- x" and md("12. x") == "12\\. x" and md("a-b #1") == "a-b #1"
    assert md("back\\slash") == "back\\\\slash"
    assert md("中文🔥") == "中文🔥"


def test_oneline_and_mdurl() -> None:
    assert oneline("a\n\n  b\r\nc\u2028d") == "a b c d"
    assert mdurl("http://x/a b(c)<d>") == "http://x/a%20b%28c%29%3Cd%3E"
    assert mdurl("http://x/?q=%7Ba%7D&b=1#f") == "http://x/?q=%7Ba%7D&b=1#f"


def test_cut() -> None:
    assert cut("abcdef", 4) == "abc…"
    assert cut("abc", 3) == "abc"
    assert cut("告警🔥告警", 3) == "告警…"
    assert cut("abcdef", 4, end="...") == "a..."


def test_cut_bytes() -> None:
    assert cut_bytes("告警告警", 10) == "告警…"  # 6 + 3 bytes; never half a character
    assert cut_bytes("🔥🔥", 7) == "🔥…"
    assert cut_bytes("abc", 3) == "abc"
    assert cut_bytes("abcdef", 2) == ""


def test_join_labels() -> None:
    labels = {"b": "2", "a": "1", "c": "3"}
    assert join_labels(labels) == "a=1, b=2, c=3"
    assert join_labels(labels, ["c", "a", "zz"]) == "c=3, a=1"
    assert join_labels(labels, sep=" · ", fmt="{k}:{v}", exclude=["b"]) == "a:1 · c:3"


def test_duration_and_localtime(tmp_path: Path) -> None:
    assert format_duration(timedelta(seconds=45)) == "45s"
    assert format_duration(timedelta(minutes=5, seconds=3)) == "5m 3s"
    assert format_duration(timedelta(hours=2, minutes=5, seconds=9)) == "2h 5m"
    assert format_duration(timedelta(days=3, hours=4)) == "3d 4h"
    assert format_duration(timedelta(days=1)) == "1d"
    assert format_duration(timedelta(seconds=-5)) == "0s"
    tpl = (
        "{{ alerts[0].startsAt | duration }}|{{ alerts[0].startsAt | duration(end) }}|"
        "{{ alerts[0].startsAt | localtime('%m-%d %H:%M %Z') }}|{{ none | localtime }}"
    )
    r, _ = custom(tmp_path, "t.md.j2", tpl, timezone="America/New_York")
    env: Environment = r.env
    out = env.get_template("t.md.j2").render(
        alerts=[{"startsAt": datetime(2026, 11, 28, 3, 14, tzinfo=UTC)}],
        now=NOW,
        end=NOW + timedelta(hours=1),
        none=None,
    )
    assert out == "5m 15s|1h 5m|11-27 22:14 EST|"


def test_the_kept_answers_of_filters_are_the_answers() -> None:
    # md, mdlink and localtime keep answers for short text; the long way agrees.
    from zoneinfo import ZoneInfo

    from receiver.messages.filters import MEMO_CHARS, make_localtime, mdlink

    for text in ["# a*b", "- x", "x" * MEMO_CHARS, "y" * (MEMO_CHARS + 1) + "*"]:
        assert md(text) == md(text) == md(text + "")
        assert md(text).endswith("\\*") == text.endswith("*")
    for url in ["http://e.com/x y", "javascript:alert(1)", "", "http://e.com/" + "z" * MEMO_CHARS]:
        assert mdlink(url, "源") == mdlink(url, "源")
    assert mdlink("javascript:x", "a", 5) == "a: java…" and mdlink("javascript:x", "a") != (
        mdlink("javascript:x", "a", 5)
    )  # the length is part of what is kept
    # One instant written in two zones is one key: both are shown in the renderer's zone.
    localtime = make_localtime(ZoneInfo("Asia/Shanghai"))
    utc = datetime(2026, 11, 28, 3, 14, tzinfo=UTC)
    ny = utc.astimezone(ZoneInfo("America/New_York"))
    assert localtime(utc, "%H:%M %Z") == localtime(ny, "%H:%M %Z") == "11:14 CST"
    assert localtime(utc, "%d") == "28"  # the format is part of the key
