"""Our `=~` regexes against amtool's (Alertmanager 0.25, Go's regexp): the same regexes
accepted, the same refused, and the same label values matched.

Each regex is checked by `amtool check-config` on a config of its own. The accepted
ones then go into one config, a route each (all `continue: true`), and
`amtool config routes test` on every sample value says which of them match it; we
compare the whole grid, every accepted regex against every value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from receiver.routing.matchers import Matcher, MatcherError, quote

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"

if not os.access(AMTOOL, os.X_OK):
    if os.environ.get("RECEIVER_REQUIRE_E2E") == "1":
        pytest.fail("amtool is required (RECEIVER_REQUIRE_E2E=1) but missing", pytrace=False)
    pytest.skip("amtool not installed", allow_module_level=True)

# (regex, what it is about). Whether amtool accepts it and what it matches is asked
# of amtool at test time; the comment says what amtool answered when the row was added.
REGEXES: list[tuple[str, str]] = [
    # flags, anywhere in the pattern
    ("(?i)crit", "a leading flag"),
    ("x(?i)y", "a flag in mid-pattern (Python's re refused it)"),
    ("(?i:a)b", "a flag group"),
    ("(?-i)a", "a flag turned off"),
    ("(?s).", "dot matches newline"),
    ("(?m)^a$", "multi-line anchors"),
    ("(?U)a+", "ungreedy"),
    ("(?x)a b", "refused: Go has no extended mode"),
    ("(?)a", "refused: empty flags"),
    # Unicode
    ("\\pL+", "a one-letter Unicode class"),
    ("\\PL", "its negation"),
    ("\\pN", "numbers"),
    ("\\p{Greek}+", "a script"),
    ("\\p{^Greek}", "a negated script"),
    ("\\p{Han}+", "Chinese"),
    ("(?i)\\p{Lu}", "case folding into a class"),
    ("\\p{greek}", "refused: names are case-sensitive"),
    ("\\p{Kawi}", "refused: Unicode 15, newer than Go 1.19 knows (RE2 C++ knows it)"),
    ("\\pl", "refused: no such class"),
    ("\\pGreek", "\\pG then text: refused, no class G"),
    ("\\p{L}\\p{Nd}", "braces around a category"),
    ("\\P{^N}", "a doubly negated class"),
    ("[\\p{Han}\\d]+", "a Unicode class in a class"),
    ("\\p{Cypro_Minoan}", "refused: Unicode 14"),
    (".", "one code point, not one byte"),
    ("\\x{1F600}", "an astral code point"),
    ("(?i)k", "folds to the Kelvin sign too"),
    # escapes
    ("\\x{41}", "hex in braces"),
    ("\\x41", "two hex digits"),
    ("\\101", "octal"),
    ("\\12", "octal newline"),
    ("\\1", "refused: a back-reference"),
    ("\\8", "refused"),
    ("\\e", "refused: Go has no \\e"),
    ("\\C", "refused: any-byte is RE2 C++ only"),
    ("\\Z", "refused"),
    ("foo\\z", "end of text"),
    ("\\Qa.b\\E", "quoted literal"),
    ("\\x{110000}", "refused: past Unicode"),
    # classes
    ("[[:alpha:]]+", "ASCII class"),
    ("[^[:space:]]+", "negated ASCII class inside a class"),
    ("[[:^alpha:]]", "negated ASCII class"),
    ("[[:foo:]]", "refused: unknown ASCII class"),
    ("[]a]", "a leading ] is literal"),
    ("[a-]", "a trailing - is literal"),
    ("[z-a]", "refused: reversed range"),
    ("[a-\\d]", "refused: range to a class"),
    ("[\\b]", "refused: Go has no \\b in a class"),
    ("\\d+", "ASCII digits only"),
    ("\\w+", "ASCII word characters only"),
    ("\\s", "ASCII space, without \\v"),
    # anchors, as Alertmanager wraps the regex in ^(?:…)$
    ("crit", "fully anchored: no substring match"),
    ("^a$", "explicit anchors are harmless"),
    ("a$", "no match before a final newline"),
    ("\\ba\\b", "word boundaries"),
    ("a)|(b", "accepted: it closes Alertmanager's wrapper, and matches unanchored"),
    ("", "empty matches only empty"),
    (".*", "no newline without (?s)"),
    # repetition
    ("a{2}", "a count"),
    ("a{,2}", "literal in Go"),
    ("a{2", "literal in Go"),
    ("a{1000}", "the largest count"),
    ("a{1001}", "refused: over 1000"),
    ("a{1000,1001}", "refused"),
    ("(?:a{100}){100}", "refused: nested counts multiply past 1000"),
    ("((a{10}){10}){10}", "nested counts of exactly 1000"),
    ("a**", "refused: nested repetition"),
    ("a*+", "refused: no possessive"),
    ("x{2}{3}", "refused"),
    ("a*?", "lazy is fine"),
    ("\\pL{1000}", "accepted: needs more than RE2's default memory budget"),
    # groups
    ("(?P<n>a)", "a named group"),
    ("(?<n>a)", "refused by Go 1.19 (Go 1.22 and RE2 C++ take it)"),
    ("(?P<é>a)", "refused: Go's group names are ASCII"),
    ("(?=a)", "refused: look-ahead"),
    ("(?<=a)b", "refused: look-behind"),
    ("(crit|page", "refused: unbalanced"),
    ("((((((((((a))))))))))", "nesting"),
]

VALUES = [
    "", "a", "A", "aa", "ab", "Ab", "aB", "abc", "b", "xb", "xy", "xY", "XY", "crit", "CRIT",
    "critical", "foo", "a.b", "axb", "a\nb", "a\n", "\n", "é", "1", "١", "12", "αβ", "abc1",
    "数据库", "\u212a", "k", "😀", "a{,2}", "a{2", "]", "-", " ", "\u000b", "_", "a b", "n",
    "a" * 1000, "é" * 1000, "a" * 100,
]  # fmt: skip


def _config(routes: list[dict[str, Any]]) -> str:
    names = ["root"] + [r["receiver"] for r in routes]
    return json.dumps(
        {
            "route": {"receiver": "root", "routes": routes},
            "receivers": [{"name": n} for n in names],
        }
    )


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60)


def _ours(regex: str) -> Matcher | None:
    try:
        return Matcher.make("x", "=~", regex)
    except MatcherError:
        return None


def test_the_table_is_big_enough() -> None:
    assert len(REGEXES) >= 40
    assert len({r for r, _ in REGEXES}) == len(REGEXES)


def test_regexes_agree_with_amtool(tmp_path: Path) -> None:
    def accepts(i: int) -> bool:
        path = tmp_path / f"check{i}.yml"
        path.write_text(_config([{"receiver": "r", "matchers": ["x=~" + quote(REGEXES[i][0])]}]))
        return _amtool("check-config", str(path)).returncode == 0

    with ThreadPoolExecutor(max_workers=4) as pool:
        theirs = list(pool.map(accepts, range(len(REGEXES))))
    ours = [_ours(r) for r, _ in REGEXES]
    verdicts = [
        (regex, why, "amtool accepts" if t else "amtool refuses")
        for (regex, why), t, o in zip(REGEXES, theirs, ours, strict=True)
        if t != (o is not None)
    ]
    assert verdicts == []
    assert 15 <= sum(not t for t in theirs) <= len(REGEXES) - 15  # both kinds well covered

    accepted = [(r, m) for (r, _), m in zip(REGEXES, ours, strict=True) if m is not None]
    config = tmp_path / "grid.yml"
    routes = [
        {"receiver": f"r{i}", "matchers": ["x=~" + quote(r)], "continue": True}
        for i, (r, _) in enumerate(accepted)
    ]
    config.write_text(_config(routes))

    def matched(value: str) -> set[str]:
        out = _amtool("config", "routes", "test", f"--config.file={config}", "x=" + quote(value))
        assert out.returncode == 0, out.stderr
        return set(out.stdout.strip().split(","))

    with ThreadPoolExecutor(max_workers=4) as pool:
        hits = dict(zip(VALUES, pool.map(matched, VALUES), strict=True))
    differ = [
        (regex, value, "amtool matches" if f"r{i}" in hits[value] else "amtool does not")
        for i, (regex, m) in enumerate(accepted)
        for value in VALUES
        if m.matches({"x": value}) != (f"r{i}" in hits[value])
    ]
    assert differ == []
    grid = [(f"r{i}" in hits[v]) for i in range(len(accepted)) for v in VALUES]
    print(f"{len(accepted)} accepted regexes x {len(VALUES)} values, {sum(grid)} matches")
    assert 100 < sum(grid) < len(grid) // 2  # the grid is not all one answer
