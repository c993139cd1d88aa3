"""Alertmanager label matchers: the 0.25 string syntax and its semantics. Pure.

`parse_matchers('{team="db", severity=~"crit|page",}')` gives two matchers. A
value may be double-quoted; inside it `\\"`, `\\\\` and `\\n` are unescaped and
any other backslash stays literal. Regexes are fully anchored, and a missing
label reads as "".
Regexes are Go's dialect, matched by RE2 in linear time (receiver.regex).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from receiver.routing.regex import Regex, RegexError

# Go's `\s` is ASCII [\t\n\f\r ]; `\Z` because Python's `$` also matches before a final "\n".
_WS = r"[\t\n\f\r ]"
_MATCHER = re.compile(
    rf"^{_WS}*([a-zA-Z_:][a-zA-Z0-9_:]*){_WS}*(=~|=|!=|!~){_WS}*(.*?){_WS}*\Z", re.DOTALL
)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
OPS = ("=", "!=", "=~", "!~")


class MatcherError(ValueError):
    """A matcher string Alertmanager would refuse."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: Regex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: str, value: str) -> Matcher:
        if op not in OPS:
            raise MatcherError(f"unknown operator {op!r}")
        try:
            regex = Regex(value) if op in ("=~", "!~") else None
        except RegexError as e:
            raise MatcherError(f"bad regex {value!r}: {e}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self._regex is None:
            return (actual == self.value) == (self.op == "=")
        return self._regex.matches(actual) == (self.op == "=~")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"


def quote(value: str) -> str:
    """Alertmanager's quoting: `"` + value with \\, " and newline escaped + `"`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _split(text: str) -> list[str]:
    """Split on commas outside double quotes, as ParseMatchers does."""
    s = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside = escaped = False
    for ch in s:
        if ch == "," and not inside:
            tokens.append("".join(token))
            token = []
            continue
        if ch == '"':
            if escaped:
                escaped = False
            else:
                inside = not inside
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    last = "".join(token).strip()
    if last:
        tokens.append(last)
    return tokens


def _unquote(raw: str) -> str:
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    escaped = False
    for i, ch in enumerate(body):
        if escaped:
            escaped = False
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(ch, "\\" + ch))
            continue
        if ch == "\\" and i < len(body) - 1:
            escaped = True
        elif ch == '"':
            if not quoted or i < len(body) - 1:
                raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
            quoted = False
        else:
            out.append(ch)
    if quoted:
        raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
    return "".join(out)


def parse_matcher(text: str) -> Matcher:
    m = _MATCHER.match(text)
    if not m:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = m.groups()
    return Matcher.make(name, op, _unquote(raw))


def parse_matchers(text: str) -> list[Matcher]:
    """One `matchers:` element: one or more comma-separated matchers, optionally in {…}."""
    return [parse_matcher(token) for token in _split(text)]


def sort_key(m: Matcher) -> tuple[str, str, int]:
    """Alertmanager's display order: by name, then value, then type."""
    return (m.name, m.value, OPS.index(m.op))


def format_matchers(ms: Iterable[Matcher]) -> str:
    return "{" + ",".join(str(m) for m in sorted(ms, key=sort_key)) + "}"
