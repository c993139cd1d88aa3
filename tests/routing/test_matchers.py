"""Matcher syntax and semantics, as Alertmanager 0.25's pkg/labels parses them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.routing.matchers import (
    Matcher,
    MatcherError,
    format_matchers,
    parse_matcher,
    parse_matchers,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('team="db"', [("team", "=", "db")]),
        ("team=db", [("team", "=", "db")]),
        ("  team  !=  db  ", [("team", "!=", "db")]),
        ('sev=~"crit|page"', [("sev", "=~", "crit|page")]),
        ("sev!~warn.*", [("sev", "!~", "warn.*")]),
        ('{a="1",b!="2"}', [("a", "=", "1"), ("b", "!=", "2")]),
        ('a="1", b="2",', [("a", "=", "1"), ("b", "=", "2")]),
        ('msg="a,b",c=d', [("msg", "=", "a,b"), ("c", "=", "d")]),
        (r'msg="say \"hi\""', [("msg", "=", 'say "hi"')]),
        (r'p="C:\\dir"', [("p", "=", "C:\\dir")]),
        (r'p="a\nb"', [("p", "=", "a\nb")]),
        (r'p="a\tb"', [("p", "=", "a\\tb")]),  # an unknown escape stays literal
        ('foo=""', [("foo", "=", "")]),
        ("foo=", [("foo", "=", "")]),
        ("a==b", [("a", "=", "=b")]),
        ("ns:metric=1", [("ns:metric", "=", "1")]),
        ('x="天"', [("x", "=", "天")]),
        ("", []),
        ("{}", []),
    ],
)
def test_parse(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected


@pytest.mark.parametrize(
    "text",
    [
        "1abc=x",
        "a b=x",
        "noop",
        'a="unterminated',
        'a=x"y',
        'a="x"y"',
        "a=1,,b=2",
        'a=~"("',
        'a=~"(?=x)"',
        r'a=~"(x)\1"',
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matchers(text)


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('a="x"', {"a": "x"}, True),
        ('a="x"', {"a": "X"}, False),
        ('a=""', {}, True),
        ('a=""', {"a": "x"}, False),
        ('a!="x"', {}, True),
        ('a!~"x|y"', {}, True),
        ('a!~"x|y"', {"a": "y"}, False),
        ('a=~".*"', {}, True),
        ('a=~".+"', {}, False),
        ('a=~"a|b"', {"a": "ab"}, False),
        ('s=~"resolved|mixed"', {"s": "resolvedX"}, False),
        ('s=~"db"', {"s": "mydb"}, False),
        ('s=~"db.*"', {"s": "db-1"}, True),
        ('s=~"(?i)prod"', {"s": "PROD"}, True),
        ('s=~"\\\\d+"', {"s": "١٢"}, False),  # RE2's \d is ASCII
    ],
)
def test_matches(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(matcher).matches(labels) is expected


def test_format_sorts_and_escapes_like_alertmanager() -> None:
    ms = parse_matchers(r'team="legacy", service=~"db|cache", msg="a\"b"')
    assert format_matchers(ms) == r'{msg="a\"b",service=~"db|cache",team="legacy"}'


names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,8}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(names, st.sampled_from(["=", "!="]), values, st.dictionaries(names, values, max_size=3))
def test_quoted_round_trip_and_negation(
    name: str, op: str, value: str, labels: dict[str, str]
) -> None:
    m = parse_matcher(str(Matcher.make(name, op, value)))
    assert (m.name, m.op, m.value) == (name, op, value)
    # Several matchers in one string, commas and quotes inside values included.
    both = parse_matchers(f"{{{m}, {Matcher.make(name, '=', value + ',')}}}")
    assert [x.value for x in both] == [value, value + ","]
    flipped = Matcher.make(name, "!=" if op == "=" else "=", value)
    assert m.matches(labels) != flipped.matches(labels)
