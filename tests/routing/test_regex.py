"""Matcher regexes run on RE2: linear time, Go's dialect at load, odd label values."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.errors import ConfigError
from receiver.routing import load_routing
from receiver.routing.matchers import Matcher, MatcherError
from receiver.routing.regex import Regex

# Runs in a child, so that a backtracking engine hangs the child and not the suite.
REDOS = """
import time
from receiver.routing.matchers import Matcher
value = "a" * 100_000
for regex in ("(a+)+b", "(a|a)*c", "(a*)*$x", "(.*a){20}"):
    m = Matcher.make("x", "=~", regex)
    start = time.perf_counter()
    hit = m.matches({"x": value})
    print(regex, hit, f"{time.perf_counter() - start:.4f}")
"""


def test_pathological_regexes_take_linear_time() -> None:
    """Patterns that make a backtracking engine take exponential time, against a
    100 kB label value. RE2 takes well under a second; the bound is generous so a
    slow shared machine does not flake."""
    out = subprocess.run(
        [sys.executable, "-c", REDOS], capture_output=True, text=True, timeout=60, check=True
    )
    rows = [line.split() for line in out.stdout.splitlines()]
    print(*(f"{r} on 100 kB: {s} s" for r, _, s in rows), sep="\n")
    assert [(r, hit) for r, hit, _ in rows] == [
        ("(a+)+b", "False"),
        ("(a|a)*c", "False"),
        ("(a*)*$x", "False"),
        ("(.*a){20}", "True"),
    ]
    assert all(float(s) < 5 for _, _, s in rows), rows


def test_a_lone_surrogate_matches_as_the_replacement_character() -> None:
    """A JSON payload may carry "\\ud800"; Go's decoder reads it as U+FFFD."""
    assert Matcher.make("x", "=~", "a.b").matches({"x": "a\ud800b"})
    assert Matcher.make("x", "=~", "a\ufffdb").matches({"x": "a\ud800b"})
    assert not Matcher.make("x", "=~", "ab").matches({"x": "a\ud800b"})


@pytest.mark.parametrize(
    ("regex", "message"),
    [
        ("\\C", "invalid escape sequence: `\\C`"),
        ("(?<n>a)", "invalid or unsupported Perl syntax: `(?<`"),
        ("(?P<é>a)", "invalid named capture"),
        ("[a-z]\\p{^Kawi}", "newer than the Unicode 13"),
        ("a{1001}", "invalid repetition size"),
        ("(?=a)", "look-around"),
        ("(a)\\1", "back-reference"),
    ],
)
def test_what_go_refuses_is_refused_with_the_reason(regex: str, message: str) -> None:
    with pytest.raises(MatcherError, match="bad regex") as e:
        Matcher.make("x", "=~", regex)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("regex", "value"),
    [
        ("\\Q\\C(?<\\E", "\\C(?<"),
        ("\\\\C", "\\C"),
        ("[[:alpha:](?<]+", "a(?<"),
        ("[]\\\\C]+", "]\\C"),
        ("(?P<a_1>x)", "x"),
        ("\\p{Greek}", "α"),
    ],
)
def test_the_go_checks_skip_classes_quotes_and_escapes(regex: str, value: str) -> None:
    """`(?<` in a class or in \\Q…\\E is text; `\\\\C` is a backslash and a C."""
    assert Matcher.make("x", "=~", regex).matches({"x": value})


def test_a_huge_regex_is_refused_with_a_reason() -> None:
    with pytest.raises(MatcherError, match="too large"):
        Matcher.make("x", "=~", "\\pL{1000}" * 5)


def test_go_refusals_are_file_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "receivers: [{name: ops}]\n"
        "route:\n"
        "  receiver: ops\n"
        "  routes:\n"
        "    - matchers: ['x=~\"\\\\C\"']\n"
        "    - match_re: {y: '(?<n>a)'}\n"
        "    - matchers: ['z=~\"x(?i)y\"', 'w=~\"\\\\pL\\\\x{41}\\\\101\"']\n"
    )
    with pytest.raises(ConfigError) as e:
        load_routing(str(path))
    got = [(p.line, p.message) for p in e.value.problems]
    assert [line for line, _ in got] == [5, 6]
    assert "\\C" in got[0][1] and "(?<" in got[1][1]


@pytest.mark.parametrize(
    ("regex", "value"),
    [("crit|page", "page"), ("crit", "critical"), ("\\pL+", "数据库"), ("a.b", "a\ud800b"),
     ("a)|(b", "abc"), ("", ""), ("x(?i)y", "xY")],
)  # fmt: skip
def test_the_public_search_path_agrees_with_the_fast_one(regex: str, value: str) -> None:
    """Without the C++ object the wrapper exposes (another google-re2 version), the
    public `search` is used; both answer alike."""
    fast = Regex(regex)
    slow = Regex(regex)
    slow._match = None
    assert fast._match is not None  # this version has the fast path
    assert fast.matches(value) == slow.matches(value)


def _patterns() -> st.SearchStrategy[str]:
    """Regexes over a, b and c from constructs Python's re reads as RE2 does."""
    atoms = st.sampled_from(["a", "b", "c", ".", "[ab]", "[^a]", "(?:a|bc)", "\\."])
    quantified = st.tuples(atoms, st.sampled_from(["", "*", "+", "?", "{2}", "{1,3}", "*?"]))
    piece = quantified.map("".join)
    branch = st.lists(piece, min_size=1, max_size=4).map("".join)
    return st.lists(branch, min_size=1, max_size=3).map("|".join)


@settings(max_examples=300, deadline=None)
@given(_patterns(), st.text(alphabet="abc.", max_size=8))
def test_a_matcher_regex_is_fully_anchored(pattern: str, value: str) -> None:
    """`=~` matches when the whole value matches, as Python's fullmatch says, for
    patterns whose syntax both engines read alike."""
    expected = re.fullmatch(pattern, value) is not None
    assert Matcher.make("x", "=~", pattern).matches({"x": value}) is expected
    assert Matcher.make("x", "!~", pattern).matches({"x": value}) is not expected
