"""How big what a template operation makes would be, checked before it runs. Pure.

Each function either estimates the characters an operation would make (without
making them) or raises TemplateLimitError when that is over MAX_TEMPLATE_CHARS.
receiver.messages.sandbox calls them from the sandbox's hooks.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

# The default templates use a few hundred steps and a few thousand characters.
MAX_TEMPLATE_STEPS = 1_000_000  # loop iterations plus calls
MAX_TEMPLATE_CHARS = 1_000_000  # the output, and any one string or list made
MAX_TEMPLATE_MADE = 20_000_000  # characters made in all, over one render
MAX_INT_BITS = 100_000  # an integer made by * or ** (about 30,000 digits)

_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


class TemplateLimitError(Exception):
    """A template ran past one of the limits above."""


def size(value: Any, limit: int = MAX_TEMPLATE_CHARS) -> int:
    """About how many characters `str(value)` has; once past `limit`, limit + 1."""
    if type(value) is str:  # nearly every value a template handles
        return min(len(value), limit + 1)
    if type(value) is dict:  # labels and annotations: the same sum, without the stack
        total = 2 + 4 * len(value)
        for k, v in value.items():
            if type(k) is not str or type(v) is not str:
                break
            total += len(k) + len(v)
        else:
            return min(total, limit + 1)
    if type(value) is list or type(value) is tuple:  # keyLabels, exclude=[…]: strings
        total = 2 + 2 * len(value)
        for v in value:
            if type(v) is not str:
                break
            total += len(v)
        else:
            return min(total, limit + 1)
    total, stack = 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str | bytes | bytearray):
            total += len(v)
        elif isinstance(v, bool) or v is None:
            total += 5
        elif isinstance(v, int):
            total += v.bit_length() // 3 + 1
        elif isinstance(v, dict):
            total += 2 + 4 * len(v)
            stack += v.keys()
            stack += v.values()
        elif isinstance(v, list | tuple | set | frozenset):
            total += 2 + 2 * len(v)
            stack += v
        else:
            total += 24  # a float, a date, an Undefined …: a short text
        if total > limit:
            return limit + 1
    return total


def refuse(made: int, what: str) -> None:
    if made > MAX_TEMPLATE_CHARS:
        raise TemplateLimitError(f"{what} would make over {MAX_TEMPLATE_CHARS} characters")


# Methods and filters whose number arguments say how big the result is.
SIZE_ARGUMENTS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "to_bytes"})
SIZE_FILTERS = frozenset({"center", "indent", "batch", "slice"})


def numbers(args: Iterable[Any], what: str) -> None:
    for a in args:
        if isinstance(a, int) and abs(a) > MAX_TEMPLATE_CHARS:
            raise TemplateLimitError(f"{what} given {a}, over {MAX_TEMPLATE_CHARS}")


def _printf(fmt: str, args: Any) -> int:
    """About the length of `fmt % args`; every `*` width counts its number."""
    values = list(args) if isinstance(args, tuple) else [args]
    made = len(fmt) + size(values)
    for m in _PRINTF.finditer(fmt):
        for part in m.groups():
            if part and part.isdigit():
                made += int(part)
        made += sum(abs(v) for v in values if isinstance(v, int)) if "*" in m.group(0) else 0
    return made


def format_size(fmt: str, args: Iterable[Any]) -> int:
    """About the length of `fmt.format(*args)`: widths and precisions, and each field
    as long as the longest argument."""
    longest = max((size(a) for a in args), default=0)
    made = len(fmt)
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None:
            continue
        if spec and "{" in spec:
            raise TemplateLimitError("a format width taken from an argument")
        made += longest + sum(int(n) for n in re.findall(r"\d+", spec or ""))
    return made


def _str_method(s: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """About the length of what `s.name(*args)` returns (0 when it can't grow much)."""
    if name == "expandtabs":
        tab = (args or (kwargs.get("tabsize", 8),))[0]
        return len(s) + s.count("\t") * (tab if isinstance(tab, int) else 8)
    if name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        hits = s.count(args[0]) if args[0] else len(s) + 1
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else -1
        return len(s) + (hits if count < 0 else min(hits, count)) * len(args[1])
    if name == "translate" and args and isinstance(args[0], dict):
        return len(s) * max((size(v) for v in args[0].values()), default=1)
    return 0


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call that would make too much; the arguments to call it with."""
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if name in SIZE_ARGUMENTS and isinstance(owner, str | bytes | bytearray | int):
        numbers([*args, *kwargs.values()], name)  # "x".center(10**9), (1).to_bytes(10**9)
    if isinstance(owner, str) and name == "join" and args:
        items = list(args[0])
        refuse(size(items) + len(owner) * len(items), "join")
        return (items, *args[1:])
    if isinstance(owner, str):
        refuse(_str_method(owner, name, args, kwargs), name)
    if name == "generate_lorem_ipsum":  # lipsum(n=5, html=True, min=20, max=100)
        given = (
            {"n": 5, "max": 100}
            | dict(zip(("n", "html", "min", "max"), args, strict=False))
            | kwargs
        )
        refuse(int(given["n"]) * int(given["max"]) * 12, "lipsum")
    return args


def check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse `left op right` when what it makes is too big."""
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                refuse(size(seq) * times, "a repeat")
        if type(left) is int and type(right) is int:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateLimitError(f"a product of over {MAX_INT_BITS} bits")
    elif op == "**" and type(left) is int and type(right) is int and abs(left) > 1:
        if right > 0 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateLimitError(f"a power of over {MAX_INT_BITS} bits")
    elif op == "+" and isinstance(left, str | list | tuple):
        refuse(size(left) + size(right), "a sum")
    elif op == "%" and isinstance(left, str):
        refuse(_printf(left, right), "a % format")


def filter_made(name: str, s: str, rest: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if name == "replace":
        return _str_method(s, "replace", rest, {})
    if name == "format":
        return _printf(s, tuple(rest) or tuple(kwargs.values()))
    lines = s.count("\n") + 1
    pad = kwargs.get("width", rest[0] if rest else 4)
    if name == "indent":
        return len(s) + lines * (size(pad) if isinstance(pad, str) else 0)
    wrap = kwargs.get("wrapstring", rest[2] if len(rest) > 2 else "\n")
    return len(s) * (1 + size(wrap))
