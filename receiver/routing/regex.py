"""Matcher regexes in Go's dialect, run by RE2 (the `google-re2` package). Pure.

Alertmanager compiles `=~` and `!~` values with Go's `regexp` as
`^(?:VALUE)$` and asks whether that matches anywhere in the label value; this
module does exactly that, on RE2, so matching takes time linear in the value
(no backtracking). RE2 C++ and Go's `regexp/syntax` read the same syntax except
in a few corners, where Go (checked against amtool 0.25, built with Go 1.19) is
followed and what Go refuses is refused here before RE2 sees it:

- `\\C` (any byte) is RE2-only;
- `(?<name>...)` is Go 1.22+ (amtool's Go refuses it); `(?P<name>...)` works,
  and a group name is ASCII letters, digits and `_` only;
- Unicode scripts newer than Go 1.19's Unicode 13 (`\\p{Kawi}` …) are unknown.

A regex whose compiled form needs more than RE2_MAX_MEM is refused (Go's own
limit is different; see docs/routing.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import re2

# RE2 compiles with its default 8 MiB budget first; a regex that needs more (such as
# `\pL{1000}`, which Go accepts) is retried once with this budget.
RE2_MAX_MEM = 64 << 20

# Scripts that RE2 knows and Go 1.19 (Unicode 13) does not.
_NEWER_SCRIPTS = frozenset(
    {"Cypro_Minoan", "Old_Uyghur", "Tangsa", "Toto", "Vithkuqi", "Kawi", "Nag_Mundari"}
)
_UNANCHORED = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
_NO_MATCH = getattr(re2, "_NULL_SPAN", (-1, -1))
_GROUP_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_BACKREF = re.compile(r"escape sequence: \\[1-9]")


class RegexError(ValueError):
    """A regex Alertmanager would refuse."""


class Regex:
    """One compiled matcher regex: `Regex("crit|page").matches("page")`."""

    __slots__ = ("pattern", "_search", "_match")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        _check_go_dialect(pattern)
        compiled: Any = _compile("^(?:" + pattern + ")$")
        self._search: Callable[[str], Any] = compiled.search
        # The wrapper's `search` builds a match object and maps byte offsets back to
        # characters, 15 times the cost of the match itself; the C++ RE2 object under
        # it answers "is there a match" directly. Used when this version has it.
        raw = getattr(compiled, "_regexp", None)
        self._match: Callable[..., Any] | None = (
            raw.Match if raw is not None and _UNANCHORED is not None else None
        )

    def matches(self, value: str) -> bool:
        try:
            text = value.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (a JSON payload may carry one) is what Go's JSON
            # decoder turns into U+FFFD.
            value = _replace_surrogates(value)
            text = value.encode("utf-8")
        if self._match is not None:
            return bool(self._match(_UNANCHORED, text, 0, len(text))[0] != _NO_MATCH)
        return self._search(value) is not None


def _options(max_mem: int | None) -> Any:
    opts = re2.Options()
    opts.log_errors = False  # errors are raised, not written to stderr
    opts.never_capture = True  # only "does it match" is asked: no submatch work
    if max_mem is not None:
        opts.max_mem = max_mem
    return opts


def _compile(anchored: str) -> Any:
    try:
        anchored.encode("utf-8")
    except UnicodeEncodeError:
        raise RegexError("a regex must be valid UTF-8") from None
    for budget in (None, RE2_MAX_MEM):
        try:
            return re2.compile(anchored, _options(budget))
        except re2.error as e:
            reason = _reason(e)
            if "too large" not in reason:
                raise RegexError(reason) from None
    raise RegexError(
        f"the regex is too large: its compiled form needs over {RE2_MAX_MEM >> 20} MiB"
    )


def _reason(e: Exception) -> str:
    arg = e.args[0] if e.args else e
    reason = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    if _LOOKAROUND.search(reason):
        return reason + " (look-around: Alertmanager's RE2 has none)"
    if _BACKREF.search(reason):
        return reason + " (a back-reference: Alertmanager's RE2 has none)"
    return reason


def _replace_surrogates(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _check_go_dialect(p: str) -> None:
    """Raise RegexError for what RE2 C++ reads and Go's regexp refuses."""
    i, n = 0, len(p)
    in_class = False
    while i < n:
        ch = p[i]
        if ch == "\\":
            nxt = p[i + 1 : i + 2]
            if nxt == "Q" and not in_class:
                end = p.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            if nxt == "C":
                raise RegexError("invalid escape sequence: `\\C`")
            if nxt in ("p", "P"):
                i = _unicode_class(p, i)
                continue
            i += 2
        elif in_class:
            if p.startswith("[:", i):
                end = p.find(":]", i + 2)
                i = i + 1 if end < 0 else end + 2
                continue
            in_class = ch != "]"
            i += 1
        elif ch == "[":
            in_class = True
            i += 1
            i += p.startswith("^", i)
            i += p.startswith("]", i)  # a `]` first in a class is literal
        elif p.startswith("(?<", i) and p[i + 3 : i + 4] not in ("=", "!"):
            raise RegexError("invalid or unsupported Perl syntax: `(?<`")
        elif p.startswith("(?P<", i):
            end = p.find(">", i + 4)
            name = p[i + 4 : end] if end >= 0 else ""
            if end >= 0 and not _GROUP_NAME.match(name):
                raise RegexError(f"invalid named capture: `(?P<{name}>`")
            i += 4
        else:
            i += 1


def _unicode_class(p: str, i: int) -> int:
    """Check the `\\pX` or `\\p{Name}` at i; return the index after it."""
    if p[i + 2 : i + 3] != "{":
        return i + 3
    end = p.find("}", i + 3)
    if end < 0:
        return len(p)  # RE2 refuses it
    name = p[i + 3 : end].removeprefix("^")
    if name in _NEWER_SCRIPTS:
        raise RegexError(
            f"invalid character class range: `{p[i : end + 1]}` "
            "(a script newer than the Unicode 13 of Alertmanager's Go)"
        )
    return end + 1
