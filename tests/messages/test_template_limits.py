"""A user template can't take the process down by making huge values: it falls back.

Each template here would allocate from a hundred megabytes to many gigabytes (or
spin for minutes on a huge integer). The render must fall back to the built-in
template quickly, with Python's traced memory staying small throughout.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.messages.bounds import MAX_TEMPLATE_CHARS, size
from receiver.messages.render import Renderer
from tests.render_support import NOW, TEMPLATES, am

BIG = {
    "center filter": '{{ "x" | center(10**9) }}',
    "ljust method": '{{ "x".ljust(10**9) }}',
    "power": "{{ 2 ** (10 ** 9) }}",
    "huge product": "{{ (10 ** 20000) * (10 ** 20000) * (10 ** 20000) }}",
    "repeat": '{{ "x" * 10**9 }}',
    "list repeat of a big string": '{{ ["y" * 100000] * 1000 }}',
    "printf star width": '{{ "%*s" % (10**9, "x") }}',
    "printf width": '{{ "%01000000000d" % 1 }}',
    "format filter width": '{{ "%0900000000d" | format(1) }}',
    "str.format width": '{{ "{:>1000000000}".format("x") }}',
    "format on Markup": '{{ ("{:>1000000000}" | safe).format("x") }}',
    "format by item": '{{ "{:>1000000000}"["format"]("x") }}',
    "format_map": '{{ "{a:>1000000000}".format_map({"a": "x"}) }}',
    "str.format fields": '{{ "{0}{0}{0}{0}{0}".format("y" * 900000) }}',
    "expandtabs": '{{ ("\t" * 1000).expandtabs(999999) }}',
    "replace filter": '{{ ("x" * 1000) | replace("x", "y" * 100000) }}',
    "replace method": '{{ ("x" * 1000).replace("x", "y" * 100000) }}',
    "translate": '{{ ("x" * 100).translate({120: "y" * 900000}) }}',
    "indent": '{{ ("\n" * 900000) | indent("z" * 1000, true) }}',
    "doubling with ~": (
        '{% set ns = namespace(s="x") %}{% for i in range(40) %}'
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"
    ),
    "doubling with +": (
        '{% set ns = namespace(s="x") %}{% for i in range(40) %}'
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}"
    ),
    "many big strings kept": (
        "{% set l = [] %}{% for i in range(100000) %}"
        '{{ l.append("y" * 100000 ~ i) or "" }}{% endfor %}{{ l | length }}'
    ),
    "join filter": (
        '{% set l = [] %}{% for i in range(1000) %}{{ l.append("y" * 100000) or "" }}'
        "{% endfor %}{{ l | join | length }}"
    ),
    "join method": (
        '{% set l = [] %}{% for i in range(1000) %}{{ l.append("y" * 100000) or "" }}'
        '{% endfor %}{{ "".join(l) | length }}'
    ),
    "mdlinks of long links": (  # 1.8 M characters of links, from pairs within the limits
        "{% set l = [] %}{% for i in range(20) %}"
        '{{ l.append(("n", "https://x.example/" ~ "y" * 90000)) or "" }}'
        "{% endfor %}{{ l | mdlinks | length }}"
    ),
    "list as text": '{{ ["y" * 900000, "y" * 900000] }}',
    "string filter": '{{ ["y" * 900000, "y" * 900000] | string | length }}',
    "block capture": (
        '{% set x %}{% for i in range(100000) %}{{ "y" * 1000 }}{% endfor %}{% endset %}'
        "{{ x | length }}"
    ),
    "macro": '{% macro m() %}{{ "y" * 900000 }}{% endmacro %}{{ (m() ~ m() ~ m()) | length }}',
    "batch fill": '{{ ["x"] | batch(10**9, "y") | list | length }}',
    "lipsum": "{{ lipsum(10**6) | length }}",
    "to_bytes": '{{ (1).to_bytes(10**9, "big") | length }}',
    "huge range": "{{ range(10**9) | list | length }}",
}


@pytest.mark.parametrize("source", BIG.values(), ids=BIG.keys())
def test_a_template_that_makes_huge_values_falls_back(tmp_path: Path, source: str) -> None:
    (tmp_path / "big.md.j2").write_text(source, encoding="utf-8")
    r = Renderer(str(tmp_path))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        m = r.render(am("am-firing-1"), template="big.md.j2", now=NOW)
        took = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"fell back in {took:.3f} s, peak {peak / 2**20:.1f} MiB traced")
    assert m.fallback and "HighLatency" in str(m.msg)
    assert peak < 150 * 2**20  # the limits allow ~20 M characters made per render
    assert took < 10  # generous: a shared machine; it takes milliseconds


def test_the_default_templates_stay_far_inside_the_limits() -> None:
    """The checks must not catch an ordinary template: 55 alerts, every msgtype."""
    r = Renderer(TEMPLATES, max_bytes=20000)
    for msgtype in ("markdown", "text", "action_card"):
        m = r.render(am("am-firing-55"), msgtype=msgtype, now=NOW)
        assert not m.fallback, msgtype


def test_values_just_under_the_limit_still_render(tmp_path: Path) -> None:
    (tmp_path / "ok.md.j2").write_text(
        '{{ ("x" | center(900000)) | length }} {{ "%5s|" % "a" }} {{ "{:>4}".format("b") }}'
        ' {{ 2 ** 64 }} {{ ["a", "b"] | join("-") }} {{ "a\tb".expandtabs(4) }}',
        encoding="utf-8",
    )
    m = Renderer(str(tmp_path)).render(am("am-firing-1"), template="ok.md.j2", now=NOW)
    assert not m.fallback
    assert "900000     a| " in str(m.msg)
    assert "   b 18446744073709551616 a-b a   b" in str(m.msg)


def test_big_numbers_that_make_nothing_big_are_fine(tmp_path: Path) -> None:
    """Only a number that sizes the result is checked: a timestamp is just a number."""
    (tmp_path / "ok.md.j2").write_text(
        '{{ "%d" | format(1764806400) }} {{ "{}".format(1764806400) }}'
        ' {{ "abcabc".find("c", 0, 10**9) }} {{ range(0, 10**9, 10**8) | list | length }}'
        " {{ 1764806400 | filesizeformat }} {{ 10**12 }}",
        encoding="utf-8",
    )
    m = Renderer(str(tmp_path)).render(am("am-firing-1"), template="ok.md.j2", now=NOW)
    assert not m.fallback
    assert "1764806400 1764806400 2 10 1.8 GB 1000000000000" in str(m.msg)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", 3), (["ab", "cd"], 10), ({"k": "vv"}, 9), (2**30, 11), (None, 5)],
)
def test_size_estimates_the_text_of_a_value(value: object, expected: int) -> None:
    assert size(value) == expected


@given(
    value=st.dictionaries(
        st.text(max_size=5), st.text(max_size=5) | st.integers() | st.lists(st.text(max_size=3))
    ),
    limit=st.integers(0, 60),
)
def test_size_of_a_dict_is_the_same_by_its_quick_path(value: dict[str, object], limit: int) -> None:
    def walked(v: object) -> int:  # the general walk, which the flat-dict path skips
        if isinstance(v, str):
            return len(v)
        if isinstance(v, int):
            return v.bit_length() // 3 + 1
        if isinstance(v, dict):
            return 2 + 4 * len(v) + sum(walked(x) for kv in v.items() for x in kv)
        assert isinstance(v, list)
        return 2 + 2 * len(v) + sum(map(walked, v))

    assert size(value, limit) == min(walked(value), limit + 1)


@given(
    value=st.lists(st.text(max_size=5) | st.integers() | st.lists(st.text(max_size=3)))
    | st.tuples(st.text(max_size=5), st.text(max_size=5)),
    limit=st.integers(0, 60),
)
def test_size_of_a_list_is_the_same_by_its_quick_path(value: object, limit: int) -> None:
    def walked(v: object) -> int:  # the general walk, which the list-of-text path skips
        if isinstance(v, str):
            return len(v)
        if isinstance(v, int):
            return v.bit_length() // 3 + 1
        assert isinstance(v, list | tuple)
        return 2 + 2 * len(v) + sum(map(walked, v))

    assert size(value, limit) == min(walked(value), limit + 1)


def test_size_stops_counting_past_its_limit() -> None:
    many = ["x" * 1000] * 10**6  # a billion characters as text
    assert size(many) == MAX_TEMPLATE_CHARS + 1
