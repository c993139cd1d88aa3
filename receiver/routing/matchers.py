"""Alertmanager label matchers: the 0.25 string syntax and its semantics. Pure.

`parse_matchers('{team="db", severity=~"crit|page",}')` gives two matchers. A
value may be double-quoted; inside it `\\"`, `\\\\` and `\\n` are unescaped and
any other backslash stays literal. Regexes are fully anchored, and a missing
label reads as "".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Go's `\s` is ASCII [\t\n\f\r ]; `\Z` because Python's `$` also matches before a final "\n".
_WS = r"[\t\n\f\r ]"
_MATCHER = re.compile(
    rf"^{_WS}*([a-zA-Z_:][a-zA-Z0-9_:]*){_WS}*(=~|=|!=|!~){_WS}*(.*?){_WS}*\Z", re.DOTALL
)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
OPS = ("=", "!=", "=~", "!~")
# Constructs Python accepts but Go's RE2 (and so Alertmanager) rejects.
_NOT_RE2 = re.compile(r"\(\?[=!>]|\(\?<[=!]|\(\?P=|\\[1-9]")
# RE2's ASCII classes `[[:name:]]`, which Python reads as a set of the letters.
_ASCII = "".join(map(chr, range(128)))
_POSIX = {
    name: "".join(c for c in _ASCII if re.fullmatch(cls, c))
    for name, cls in {
        "alnum": "[0-9A-Za-z]",
        "alpha": "[A-Za-z]",
        "ascii": "[\x00-\x7f]",
        "blank": "[\t ]",
        "cntrl": "[\x00-\x1f\x7f]",
        "digit": "[0-9]",
        "graph": "[!-~]",
        "lower": "[a-z]",
        "print": "[ -~]",
        "punct": "[!-/:-@\\[-`{-~]",
        "space": "[\t\n\v\f\r ]",
        "upper": "[A-Z]",
        "word": "[0-9A-Za-z_]",
        "xdigit": "[0-9A-Fa-f]",
    }.items()
}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_CLASS = re.compile(r"\[:(\^?)([a-z]+):\]")


class MatcherError(ValueError):
    """A matcher string Alertmanager would refuse."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: str, value: str) -> Matcher:
        if op not in OPS:
            raise MatcherError(f"unknown operator {op!r}")
        regex = compile_regex(value) if op in ("=~", "!~") else None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self._regex is None:
            return (actual == self.value) == (self.op == "=")
        hit = self._regex.fullmatch(actual) is not None
        return hit == (self.op == "=~")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"


def quote(value: str) -> str:
    """Alertmanager's quoting: `"` + value with \\, " and newline escaped + `"`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def compile_regex(value: str) -> re.Pattern[str]:
    if _NOT_RE2.search(value):
        raise MatcherError(
            f"regex {value!r} uses look-around or back-references, which Alertmanager (RE2) "
            "does not support"
        )
    try:
        # Matched with fullmatch, which anchors like AM's ^(?:…)$; ASCII like Go's \d \w \s.
        return re.compile(_from_re2(value), re.ASCII)
    except re.error as e:
        raise MatcherError(f"bad regex {value!r}: {e}") from None


def _from_re2(value: str) -> str:
    r"""RE2 syntax that Python reads differently, rewritten for Python: `[[:alpha:]]`,
    `a{,2}` and `a{2` (literal in RE2), `\z`, `\Q…\E`. What RE2 refuses (`\Z`, a
    repeat over 1000, an unknown `[:name:]`, a possessive `a*+`) raises re.error."""
    out: list[str] = []
    i, n = 0, len(value)
    in_class = False
    class_open = 0  # index just after a class's `[` or `[^`: a `]` there is literal
    repeated = False  # the last thing written was a repeat (`*`, `+?`, `{2}`)
    while i < n:
        ch, was_repeat, repeated = value[i], repeated, False
        if not in_class and ch == "+" and was_repeat:
            raise re.error("invalid nested repetition operator")
        if not in_class and value.startswith("\\Q", i):
            end = value.find("\\E", i + 2)
            end = n if end < 0 else end
            out.append("".join(re.escape(c) for c in value[i + 2 : end]))
            i = end + 2
        elif ch == "\\":
            nxt = value[i + 1 : i + 2]
            if nxt == "Z":
                raise re.error("invalid escape sequence: \\Z")
            out.append("\\Z" if nxt == "z" else value[i : i + 2])
            i += 2
        elif in_class:
            m = _CLASS.match(value, i)
            if m and m.group(2) not in _POSIX:
                raise re.error(f"invalid character class range: {m.group(0)}")
            if m:
                chars = _POSIX[m.group(2)]
                if m.group(1):
                    chars = "".join(c for c in _ASCII if c not in chars) + "\x80-\U0010ffff"
                    out.append("".join(re.escape(c) for c in chars[:-3]) + chars[-3:])
                else:
                    out.append("".join(re.escape(c) for c in chars))
                i = m.end()
                continue
            in_class = not (ch == "]" and i != class_open)
            out.append("\\[" if ch == "[" else ch)
            i += 1
        elif ch == "[":
            in_class = True
            class_open = i + (2 if value.startswith("[^", i) else 1)
            out.append(value[i:class_open])
            i = class_open
        elif ch == "{":
            m = _REPEAT.match(value, i)
            if m and any(g and int(g) > 1000 for g in (m.group(1), m.group(3))):
                raise re.error(f"invalid repeat count: {m.group(0)}")
            out.append(m.group(0) if m else "\\{")
            i, repeated = (m.end(), True) if m else (i + 1, False)
        else:
            repeated = ch in "*+?" and not (ch == "?" and was_repeat)
            out.append(ch)
            i += 1
    return "".join(out)


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
